"""libvirt XML as small declarative classes: object <-> ElementTree, one property per line.

Each class maps a few XML nodes to Python values and nothing else (no policy: which mode,
which ``managed``, which domain is decided in ``vfctl.backends.libvirt``). A property is
addressed as ``"child/grandchild@attr"`` (an attribute) or ``"child/grandchild"`` (text);
building creates the path, parsing reads it back, so ``from_element(x.to_element()) == x``.

Numbers are read the way libvirt reads them, not the way it writes them: a PCI address
attribute goes through ``virXMLPropUInt(node, name, 0, …)`` (libvirt ``src/conf/
device_conf.c``, ``virPCIDeviceAddressParseXML``), i.e. ``virStrToLong_uip`` with base 0 —
strtoul's C forms (``0x0a`` hex, ``012`` octal, ``12`` decimal), the whole string consumed,
no sign — and an absent attribute is 0, within ``virPCIDeviceAddressIsValid``'s limits.
Hand-written domain XML (kept in git, fed to ``virsh define``) uses all of these.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, overload

T = TypeVar("T")
X = TypeVar("X", bound="XmlObject")


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one value is written to and read from XML text."""

    encode: Callable[[T], str]
    decode: Callable[[str], T]
    strip: bool = True  # decode the text stripped (False: the decoder sees it as written)


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise ValueError(f"expected yes/no, got {text!r}")
    return text == "yes"


# strtoul(…, 0) after optional leading whitespace and '+'; virStrToLong_uip refuses '-'
_C_UINT = re.compile(r"[ \t\n\v\f\r]*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
UINT_MAX = 0xFFFFFFFF


def parse_c_uint(text: str, maximum: int = UINT_MAX) -> int:
    """An unsigned int as libvirt's ``virStrToLong_uip(text, NULL, 0, …)`` reads it."""
    m = _C_UINT.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a non-negative C integer (0x.. hex, 0.. octal)")
    digits = m[1]
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif digits.startswith("0") and len(digits) > 1:
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    if value > min(maximum, UINT_MAX):
        raise ValueError(f"{text!r} is above {maximum:#x}")
    return value


def hex_codec(width: int, maximum: int = UINT_MAX) -> Codec[int]:
    """libvirt writes PCI address fields as 0x-prefixed hex and reads any C integer form."""
    return Codec(lambda v: f"0x{v:0{width}x}", lambda s: parse_c_uint(s, maximum), strip=False)


def pci_address(
    domain: int | None, bus: int | None, slot: int | None, function: int | None
) -> str | None:
    """``dddd:bb:ss.f``; an absent field is 0 (virPCIDeviceAddressParseXML memsets first)."""
    if domain is None and bus is None and slot is None and function is None:
        return None
    return f"{domain or 0:04x}:{bus or 0:02x}:{slot or 0:02x}.{function or 0:x}"


STR: Codec[str] = Codec(str, str)
INT: Codec[int] = Codec(str, int)
YES_NO: Codec[bool] = Codec(lambda v: "yes" if v else "no", _yes_no)


class XmlProperty(Generic[T]):
    """One attribute or text node of an XmlObject, declared as a class attribute."""

    def __init__(self, path: str, codec: Codec[T], default: T | None = None) -> None:
        elem, _, attr = path.partition("@")
        self.steps = [s for s in elem.split("/") if s]
        self.attr = attr or None
        self.codec = codec
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> XmlProperty[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T | None: ...
    def __get__(self, obj: object | None, owner: type) -> XmlProperty[T] | T | None:
        if obj is None:
            return self
        value: T | None = obj.__dict__.get(self.name, self.default)
        return value

    def __set__(self, obj: object, value: T | None) -> None:
        obj.__dict__[self.name] = value

    def write(self, root: ET.Element, value: T) -> None:
        node = root
        for step in self.steps:
            child = node.find(step)
            node = child if child is not None else ET.SubElement(node, step)
        if self.attr:
            node.set(self.attr, self.codec.encode(value))
        else:
            node.text = self.codec.encode(value)

    def read(self, root: ET.Element) -> T | None:
        node = root.find("/".join(self.steps)) if self.steps else root
        if node is None:
            return None
        text = node.get(self.attr) if self.attr else node.text
        if text is None:
            return None
        try:
            return self.codec.decode(text.strip() if self.codec.strip else text)
        except ValueError as exc:
            where = "/".join([root.tag, *self.steps]) + (f"@{self.attr}" if self.attr else "")
            raise ValueError(f"bad value {text!r} at {where}: {exc}") from None


class XmlChildList(Generic[X]):
    """Repeated child elements under a path, each mapped by its own XmlObject class."""

    def __init__(self, parent: str, cls: type[X]) -> None:
        self.steps = [s for s in parent.split("/") if s]
        self.cls = cls
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> XmlChildList[X]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> list[X]: ...
    def __get__(self, obj: object | None, owner: type) -> XmlChildList[X] | list[X]:
        if obj is None:
            return self
        items: list[X] = obj.__dict__.setdefault(self.name, [])
        return items

    def __set__(self, obj: object, value: list[X]) -> None:
        obj.__dict__[self.name] = list(value)

    def write(self, root: ET.Element, items: list[X]) -> None:
        node = root
        for step in self.steps:
            child = node.find(step)
            node = child if child is not None else ET.SubElement(node, step)
        for item in items:
            node.append(item.to_element())

    def read(self, root: ET.Element) -> list[X]:
        path = "/".join([*self.steps, self.cls.TAG])
        return [self.cls.from_element(el) for el in root.findall(path)]


class XmlObject:
    """Base: collects the declared properties in order; converts to and from an Element."""

    TAG: ClassVar[str] = ""
    _fields: ClassVar[tuple[XmlProperty[Any] | XmlChildList[Any], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[XmlProperty[Any] | XmlChildList[Any]] = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, XmlProperty | XmlChildList) and value not in fields:
                    fields.append(value)
        cls._fields = tuple(fields)

    def __init__(self, **values: Any) -> None:
        names = {f.name for f in self._fields}
        for key, value in values.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no XML property {key!r}")
            setattr(self, key, value)

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in self._fields}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values().items() if v not in (None, []))
        return f"{type(self).__name__}({shown})"

    def to_element(self) -> ET.Element:
        root = ET.Element(self.TAG)
        for f in self._fields:
            value = getattr(self, f.name)
            if value is not None and value != []:
                f.write(root, value)
        return root

    def to_xml(self) -> str:
        return ET.tostring(self.to_element(), encoding="unicode")

    @classmethod
    def from_element(cls: type[X], el: ET.Element) -> X:
        if el.tag != cls.TAG:
            raise ValueError(f"expected <{cls.TAG}>, got <{el.tag}>")
        obj = cls.__new__(cls)
        for f in cls._fields:
            obj.__dict__[f.name] = f.read(el)
        return obj

    @classmethod
    def from_xml(cls: type[X], text: str) -> X:
        return cls.from_element(ET.fromstring(text))


class PciSource(XmlObject):
    """Mixin: the host PCI address under ``<source><address …/>``, as one string."""

    source_domain = XmlProperty("source/address@domain", hex_codec(4, 0xFFFF))
    source_bus = XmlProperty("source/address@bus", hex_codec(2, 0xFF))
    source_slot = XmlProperty("source/address@slot", hex_codec(2, 0x1F))
    source_function = XmlProperty("source/address@function", hex_codec(1, 7))

    @property
    def source_address(self) -> str | None:
        return pci_address(
            self.source_domain, self.source_bus, self.source_slot, self.source_function
        )

    def set_source_address(self, address: str) -> None:
        """Split ``dddd:bb:dd.f`` into the four attributes."""
        dom, bus, rest = address.split(":")
        slot, fn = rest.split(".")
        self.source_domain = int(dom, 16)
        self.source_bus = int(bus, 16)
        self.source_slot = int(slot, 16)
        self.source_function = int(fn, 16)


class HostdevXml(PciSource):
    """``<hostdev mode='subsystem' type='pci'>``: the guest sees the bare PCI function."""

    TAG = "hostdev"
    mode = XmlProperty("@mode", STR, default="subsystem")
    type = XmlProperty("@type", STR, default="pci")
    managed = XmlProperty("@managed", YES_NO)
    driver_name = XmlProperty("driver@name", STR)
    alias = XmlProperty("alias@name", STR)


class HostdevInterfaceXml(PciSource):
    """``<interface type='hostdev'>``: a VF as a NIC; libvirt sets MAC/VLAN through the PF."""

    TAG = "interface"
    type = XmlProperty("@type", STR, default="hostdev")
    managed = XmlProperty("@managed", YES_NO)
    mac = XmlProperty("mac@address", STR)
    driver_name = XmlProperty("driver@name", STR)
    source_type = XmlProperty("source/address@type", STR, default="pci")
    vlan_tag = XmlProperty("vlan/tag@id", INT)
    alias = XmlProperty("alias@name", STR)


class ForwardAddressXml(XmlObject):
    """One VF listed in a hostdev network's pool: ``<forward><address type='pci' …/>``."""

    TAG = "address"
    type = XmlProperty("@type", STR, default="pci")
    domain = XmlProperty("@domain", hex_codec(4, 0xFFFF))
    bus = XmlProperty("@bus", hex_codec(2, 0xFF))
    slot = XmlProperty("@slot", hex_codec(2, 0x1F))
    function = XmlProperty("@function", hex_codec(1, 7))

    @property
    def pci_address(self) -> str | None:
        return pci_address(self.domain, self.bus, self.slot, self.function)

    @classmethod
    def of(cls, address: str) -> ForwardAddressXml:
        """From ``dddd:bb:dd.f``."""
        dom, bus, rest = address.split(":")
        slot, fn = rest.split(".")
        return cls(domain=int(dom, 16), bus=int(bus, 16), slot=int(slot, 16), function=int(fn, 16))


POOL_NS = "urn:vfctl:pool:1"  # vfctl's mark on the hostdev networks it made (and may change)
ET.register_namespace("vfctl", POOL_NS)
_MARK = f"metadata/{{{POOL_NS}}}pool"


class NetworkXml(XmlObject):
    """A libvirt ``<network>``; a VF pool when ``forward_mode == 'hostdev'``."""

    TAG = "network"
    name = XmlProperty("name", STR)
    uuid = XmlProperty("uuid", STR)
    forward_mode = XmlProperty("forward@mode", STR)
    forward_managed = XmlProperty("forward@managed", YES_NO)
    pf_dev = XmlProperty("forward/pf@dev", STR)
    addresses = XmlChildList("forward", ForwardAddressXml)
    vlan_tag = XmlProperty("vlan/tag@id", INT)
    pool_pf = XmlProperty(f"{_MARK}@pf", STR)  # vfctl's pool marker: the PF, and the settings
    pool_settings = XmlProperty(f"{_MARK}@settings", STR)


class NetworkInterfaceXml(XmlObject):
    """``<interface type='network'>``: the guest gets whichever free VF the network hands out."""

    TAG = "interface"
    type = XmlProperty("@type", STR, default="network")
    mac = XmlProperty("mac@address", STR)
    network = XmlProperty("source@network", STR)
    alias = XmlProperty("alias@name", STR)


@dataclass(frozen=True)
class FoundDevice:
    """A device in a domain XML that holds a host PCI function, with its exact element text."""

    element: str  # "hostdev" | "interface"
    address: str
    xml: str
    device: HostdevXml | HostdevInterfaceXml


@dataclass(frozen=True)
class FoundInterface:
    """An ``<interface>`` drawing from a libvirt network, with its exact element text.

    In a running domain's live XML libvirt shows the actual device (``type='hostdev'`` with the
    VF's address under ``<source network=…>``); the inactive XML keeps ``type='network'``.
    """

    network: str
    xml: str
    mac: str | None


def network_interfaces(domain_xml: str) -> Iterator[FoundInterface]:
    """Every ``<interface>`` whose ``<source network=…>`` names a network."""
    root = ET.fromstring(domain_xml)
    for el in root.iterfind("devices/interface"):
        src = el.find("source")
        name = src.get("network") if src is not None else None
        if not name:
            continue
        mac = el.find("mac")
        exact = copy.deepcopy(el)
        exact.tail = None
        yield FoundInterface(
            name,
            ET.tostring(exact, encoding="unicode"),
            None if mac is None else mac.get("address"),
        )


def pci_devices(
    domain_xml: str, warn: Callable[[str], None] | None = None
) -> Iterator[FoundDevice]:
    """Every ``<hostdev type='pci'>`` and ``<interface type='hostdev'>`` with a PCI source.

    A malformed element is reported through ``warn`` and skipped; the others still count.
    """
    root = ET.fromstring(domain_xml)
    for i, el in enumerate(root.iterfind("devices/*")):
        dev: HostdevXml | HostdevInterfaceXml
        try:
            if el.tag == "hostdev" and el.get("type") == "pci":
                if el.find("source/address") is None:
                    continue
                dev = HostdevXml.from_element(el)
            elif el.tag == "interface" and el.get("type") == "hostdev":
                if el.find("source/address[@type='pci']") is None:
                    continue
                dev = HostdevInterfaceXml.from_element(el)
            else:
                continue
        except ValueError as exc:
            if warn is not None:
                name = root.findtext("name") or "?"
                warn(f"domain {name}: <{el.tag}> #{i + 1} under <devices> skipped: {exc}")
            continue
        address = dev.source_address
        if address is None:
            continue
        exact = copy.deepcopy(el)
        exact.tail = None
        yield FoundDevice(el.tag, address, ET.tostring(exact, encoding="unicode"), dev)
