"""Proxmox PCI property strings: ``hostpciN`` values and PCI-mapping ``map`` entries.

Conversion only (string <-> object), no policy: which slot to use, whether to use a mapping
and what counts as "the VF is already there" live in ``proxmox.py``; mappings and pools in
``pve_mapping.py``. Parsing follows pve-common's property-string rules (split on ``,``, blank
parts skipped, duplicate and unknown keys rejected, a bare part goes to the default key
``host``) and then every value is checked against its schema pattern as a *full* match (a
trailing newline is never accepted). The patterns are those of qemu-server
``src/PVE/QemuServer/PCI.pm`` (``$hostpci_fmt``, ``parse_hostpci``: "Cannot set both 'host'
and 'mapping'") and pve-guest-common ``src/PVE/Mapping/PCI.pm`` (``$map_fmt``). The
formatters refuse to produce what the parsers refuse, so vfctl never writes a string PVE
would reject.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_HOSTPCI = 16  # qemu-server $MAX_HOSTPCI_DEVICES
SLOTS = tuple(f"hostpci{i}" for i in range(MAX_HOSTPCI))

# one HOSTPCIID of hostpciN: optional domain, bus:dev, optional .function (none: the device)
_HOSTPCIID = re.compile(r"(?:([a-f0-9]{4,}):)?([a-f0-9]{2}):([a-f0-9]{2})(?:\.([a-f0-9]))?")
# one id of a mapping entry's path: the domain is required (pve-guest-common $PCI_RE)
_MAPPCIID = re.compile(r"[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?")
CONFIGID = re.compile(r"[a-z][a-z0-9_-]+", re.IGNORECASE)  # pve-configid
NODE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")  # pve-node
VENDOR_DEVICE = re.compile(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}")  # map id / subsystem-id
HEX_ID = re.compile(r"0x[0-9a-fA-F]{4}")  # hostpci vendor-id, device-id, sub-*-id
_MDEV = re.compile(r"[^/.:]+")
_ROMFILE = re.compile(r"[^,;]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")
DESCRIPTION_MAX = 4096
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false"}

HOSTPCI_KEYS = (
    "host", "device-id", "driver", "legacy-igd", "mapping", "mdev", "pcie", "rombar",
    "romfile", "sub-device-id", "sub-vendor-id", "vendor-id", "x-vga",
)  # fmt: skip
_BOOL_KEYS = {"legacy-igd", "pcie", "rombar", "x-vga"}
_PATTERN_KEYS = {
    "device-id": HEX_ID,
    "vendor-id": HEX_ID,
    "sub-device-id": HEX_ID,
    "sub-vendor-id": HEX_ID,
    "mdev": _MDEV,
    "romfile": _ROMFILE,
}
MAP_KEYS = ("node", "path", "id", "iommugroup", "subsystem-id", "description")


class PropertyStringError(ValueError):
    """A property string that PVE itself would reject."""


def full(pattern: re.Pattern[str], value: str) -> bool:
    """The schema's anchored match, without Perl's tolerance of one trailing newline."""
    return pattern.fullmatch(value) is not None


def split_property_string(
    text: str, keys: Iterable[str], default_key: str | None
) -> dict[str, str]:
    """Key/value pairs in order; raises on unknown or repeated keys like pve-common does."""
    known = set(keys)
    out: dict[str, str] = {}
    for part in text.split(","):
        if part.strip() == "":
            continue
        if "=" in part:
            k, v = part.split("=", 1)
        elif default_key is not None:
            k, v = default_key, part
        else:
            raise PropertyStringError(f"value without key: {part!r}")
        if k not in known:
            raise PropertyStringError(f"unknown key {k!r}")
        if k in out:
            raise PropertyStringError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_bool(v: str) -> bool:
    lv = v.lower()
    if lv in _TRUE:
        return True
    if lv in _FALSE:
        return False
    raise PropertyStringError(f"not a boolean: {v!r}")


def _b(v: bool) -> str:
    return "1" if v else "0"


@dataclass(frozen=True)
class HostPci:
    """One ``hostpciN`` value. ``host`` keeps the IDs as written (maybe short or function-less)."""

    host: tuple[str, ...] = ()
    mapping: str | None = None
    pcie: bool | None = None
    rombar: bool | None = None
    x_vga: bool | None = None
    driver: str | None = None  # "vfio" | "keep"
    extra: tuple[tuple[str, str], ...] = ()  # every other key, verbatim, in order

    @property
    def mdev(self) -> str | None:
        """A mediated device created on the function(s): the VM then holds no function."""
        return dict(self.extra).get("mdev")


def _check_hostpci(kv: Mapping[str, str]) -> None:
    """The schema's per-key checks plus qemu-server's host-xor-mapping rule."""
    if "host" in kv and "mapping" in kv:
        raise PropertyStringError("cannot set both 'host' and 'mapping'")
    if "host" not in kv and "mapping" not in kv:
        raise PropertyStringError("either 'host' or 'mapping' must be set")
    if "host" in kv:
        for hid in kv["host"].split(";"):
            if not full(_HOSTPCIID, hid):
                raise PropertyStringError(f"invalid host PCI id {hid!r}")
    if "mapping" in kv and not full(CONFIGID, kv["mapping"]):
        raise PropertyStringError(f"invalid mapping id {kv['mapping']!r}")
    for key, pat in _PATTERN_KEYS.items():
        if key in kv and not full(pat, kv[key]):
            raise PropertyStringError(f"invalid {key} {kv[key]!r}")
    for key in _BOOL_KEYS & set(kv):
        parse_bool(kv[key])
    if "driver" in kv and kv["driver"] not in ("vfio", "keep"):
        raise PropertyStringError(f"invalid driver {kv['driver']!r}: vfio or keep")


def check_mapping_id(mid: str) -> str:
    """A cluster mapping id as PVE's pve-configid format takes it (the whole string)."""
    from vfctl.errors import UsageError

    if not full(CONFIGID, mid):
        raise UsageError(
            f"invalid --mapping {mid[:60]!r}: a letter, then letters, digits, '-' or '_'"
        )
    return mid


def parse_hostpci(text: str) -> HostPci:
    kv = split_property_string(text, HOSTPCI_KEYS, "host")
    _check_hostpci(kv)
    host = tuple(kv.pop("host").split(";")) if "host" in kv else ()
    mapping = kv.pop("mapping", None)
    bools = {k: parse_bool(kv.pop(k)) if k in kv else None for k in ("pcie", "rombar", "x-vga")}
    driver = kv.pop("driver", None)
    if "legacy-igd" in kv:
        kv["legacy-igd"] = _b(parse_bool(kv["legacy-igd"]))
    return HostPci(
        host=host,
        mapping=mapping,
        pcie=bools["pcie"],
        rombar=bools["rombar"],
        x_vga=bools["x-vga"],
        driver=driver,
        extra=tuple(kv.items()),
    )


def format_hostpci(h: HostPci) -> str:
    """Canonical form: ``host=``/``mapping=`` first, booleans as 1/0; never an invalid string."""
    parts: list[str] = []
    if h.host:
        parts.append("host=" + ";".join(h.host))
    if h.mapping is not None:
        parts.append(f"mapping={h.mapping}")
    for key, val in (("pcie", h.pcie), ("rombar", h.rombar), ("x-vga", h.x_vga)):
        if val is not None:
            parts.append(f"{key}={_b(val)}")
    if h.driver is not None:
        parts.append(f"driver={h.driver}")
    for k, v in h.extra:
        if k not in HOSTPCI_KEYS or k in ("host", "mapping") or "," in v or "=" in k:
            raise PropertyStringError(f"refusing to write hostpci key {k!r}={v!r}")
        parts.append(f"{k}={v}")
    text = ",".join(parts)
    kv = split_property_string(text, HOSTPCI_KEYS, "host")
    _check_hostpci(kv)
    return text


def normalize_hostpci_id(hid: str) -> str:
    """``03:10.2`` -> ``0000:03:10.2``; a function-less ID keeps having no function."""
    m = _HOSTPCIID.fullmatch(hid)
    if not m:
        raise PropertyStringError(f"invalid host PCI id {hid!r}")
    dom, bus, dev, fn = m.groups()
    base = f"{dom or '0000'}:{bus}:{dev}"
    return base if fn is None else f"{base}.{fn}"


def expand_hostpci_id(hid: str, present: Collection[str]) -> tuple[str, ...]:
    """Full addresses an ID stands for on this node.

    A function-less ID means the functions that exist under it (qemu-server's
    ``parse_hostpci`` expands every id through ``PVE::SysFSTools::lspci``), never an
    invented .0-.7; ``present`` is this node's PCI addresses (sysfs).
    """
    n = normalize_hostpci_id(hid)
    if "." in n:
        return (n,)
    return tuple(sorted(a for a in present if a.startswith(n + ".")))


@dataclass(frozen=True)
class MapEntry:
    """One entry in a cluster PCI mapping (``map`` item of /cluster/mapping/pci)."""

    node: str
    path: tuple[str, ...]
    id: str  # vvvv:dddd
    iommugroup: int | None = None
    subsystem_id: str | None = None  # vvvv:dddd
    description: str | None = None


def _check_map_entry(e: MapEntry) -> None:
    if not full(NODE, e.node):
        raise PropertyStringError(f"invalid node {e.node!r}")
    if not e.path or not all(full(_MAPPCIID, p) for p in e.path):
        raise PropertyStringError(f"invalid path {';'.join(e.path)!r} (domain required)")
    if not full(VENDOR_DEVICE, e.id):
        raise PropertyStringError(f"invalid id {e.id!r}: vvvv:dddd")
    if e.subsystem_id is not None and not full(VENDOR_DEVICE, e.subsystem_id):
        raise PropertyStringError(f"invalid subsystem-id {e.subsystem_id!r}: vvvv:dddd")
    if e.iommugroup is not None and e.iommugroup < 0:
        raise PropertyStringError(f"invalid iommugroup {e.iommugroup!r}")
    if e.description is not None and (
        len(e.description) > DESCRIPTION_MAX or "," in e.description or "\n" in e.description
    ):
        raise PropertyStringError("invalid description")


def parse_map_entry(text: str) -> MapEntry:
    kv = split_property_string(text, MAP_KEYS, None)
    for req in ("node", "path", "id"):
        if req not in kv:
            raise PropertyStringError(f"missing key {req!r}")
    group = kv.get("iommugroup")
    if group is not None and not full(_INTEGER, group):
        raise PropertyStringError(f"invalid iommugroup {group!r}")
    e = MapEntry(
        node=kv["node"],
        path=tuple(kv["path"].split(";")),
        id=kv["id"],
        iommugroup=int(group) if group is not None else None,
        subsystem_id=kv.get("subsystem-id"),
        description=kv.get("description"),
    )
    _check_map_entry(e)
    return e


def format_map_entry(e: MapEntry) -> str:
    """The entry as PVE stores it; refuses any field (often read from sysfs) PVE would reject."""
    _check_map_entry(e)
    parts = [f"node={e.node}", "path=" + ";".join(e.path), f"id={e.id}"]
    if e.iommugroup is not None:
        parts.append(f"iommugroup={e.iommugroup}")
    if e.subsystem_id is not None:
        parts.append(f"subsystem-id={e.subsystem_id}")
    if e.description is not None:
        parts.append(f"description={e.description}")
    return ",".join(parts)


def vendor_device(vendor: str | None, device: str | None) -> str | None:
    """``vvvv:dddd`` from two sysfs ids (``0x8086``), or None when either is not 4 hex digits."""
    if vendor is None or device is None:
        return None
    v, d = (x.strip().lower().removeprefix("0x") for x in (vendor, device))
    text = f"{v}:{d}"
    return text if full(VENDOR_DEVICE, text) else None


def config_slots(config: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(slot, value) of every hostpciN in a VM config, in slot order."""
    for slot in SLOTS:
        value = config.get(slot)
        if isinstance(value, str):
            yield slot, value
