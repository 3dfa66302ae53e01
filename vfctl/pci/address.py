"""PCI addresses: parse the forms people type, format the one form the kernel uses."""

from __future__ import annotations

from vfctl.errors import UsageError
from vfctl.record import dataclass

_HEX = frozenset("0123456789abcdefABCDEF")
_FN = frozenset("01234567")


def _hex(s: str, most: int) -> bool:
    return 0 < len(s) <= most and _HEX.issuperset(s)


def _fields(text: str) -> tuple[str, str, str, str] | None:
    """(domain or "", bus, device, function) of ``[dddd:]bb:dd.f`` (1-4, 1-2, 1-2 hex digits,
    function 0-7), else None: the regex ``^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):
    ([0-9a-fA-F]{1,2})\\.([0-7])$`` read without re (its import costs more than a listing);
    the kernel's own spelling ``dddd:bb:dd.f`` by position first (discovery parses each PF's)."""
    if (
        len(text) == 12
        and text[4] == text[7] == ":"
        and text[10] == "."
        and text[11] in _FN
        and _HEX.issuperset(text[:4] + text[5:7] + text[8:10])
    ):
        return text[:4], text[5:7], text[8:10], text[11]
    parts = text.split(":")
    if len(parts) not in (2, 3):
        return None
    domain = parts[0] if len(parts) == 3 else ""
    bus = parts[-2]
    dev, dot, fn = parts[-1].partition(".")
    if len(parts) == 3 and not _hex(domain, 4):
        return None
    if not (_hex(bus, 2) and _hex(dev, 2) and dot and len(fn) == 1 and fn in "01234567"):
        return None
    return domain, bus, dev, fn


@dataclass(frozen=True, order=True)
class PciAddress:
    domain: int
    bus: int
    device: int
    function: int

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.device:02x}.{self.function:x}"

    @property
    def routing_id(self) -> int:
        """Bus/devfn as one number: VF n's is the PF's + offset + n * stride (SR-IOV spec)."""
        return (self.bus << 8) | (self.device << 3) | self.function

    @classmethod
    def from_routing_id(cls, domain: int, rid: int) -> PciAddress:
        return cls(domain, (rid >> 8) & 0xFF, (rid >> 3) & 0x1F, rid & 0x7)


def looks_like_address(text: str) -> bool:
    return _fields(text) is not None


def parse(text: str) -> PciAddress:
    """Parse ``0000:03:00.0`` or ``03:00.0``; UsageError otherwise."""
    m = _fields(text.strip())
    if not m:
        raise UsageError(f"malformed PCI address {text!r}: expected dddd:bb:dd.f or bb:dd.f")
    dev = int(m[2], 16)
    if dev > 0x1F:
        raise UsageError(f"malformed PCI address {text!r}: device number above 1f")
    return PciAddress(int(m[0] or "0", 16), int(m[1], 16), dev, int(m[3]))


def normalize(text: str) -> str:
    return str(parse(text))


def vf_address(pf: str, offset: int, stride: int, index: int) -> str:
    """The routing-ID rule the SR-IOV capability defines for VF addresses."""
    p = parse(pf)
    return str(PciAddress.from_routing_id(p.domain, p.routing_id + offset + index * stride))


_BUS = [f"{b:02x}" for b in range(256)]
_DEVFN = [f"{d >> 3:02x}.{d & 7:x}" for d in range(256)]


def vf_addresses(pf: str, offset: int, stride: int, indexes: list[int]) -> list[str]:
    """:func:`vf_address` for many indexes of one PF (parsed once, formatted from tables:
    discovery's hot loop)."""
    p = parse(pf)
    base = p.routing_id + offset
    dom = f"{p.domain:04x}:"
    bus, devfn = _BUS, _DEVFN
    return [
        f"{dom}{bus[(rid >> 8) & 0xFF]}:{devfn[rid & 0xFF]}"
        for rid in [base + i * stride for i in indexes]
    ]


def vf_address_run(pf: str, offset: int, stride: int, k: int) -> list[str]:
    """:func:`vf_addresses` for indexes 0 … k-1 (what discovery derives): per bus one prefix
    joined to a slice of the devfn table, not a format per VF (a comprehension's ``+``: a
    third cheaper than mapping the prefix's ``__add__``)."""
    p = parse(pf)
    rid = p.routing_id + offset
    end = rid + stride * k
    if k <= 0 or stride <= 0 or rid < 0 or end - stride > 0xFFFF:
        return vf_addresses(pf, offset, stride, list(range(k)))
    dom = f"{p.domain:04x}:"
    out: list[str] = []
    while rid < end:
        bus = rid >> 8
        lo, hi = rid & 0xFF, min(end - (bus << 8), 256)
        prefix = f"{dom}{_BUS[bus]}:"
        out += [prefix + devfn for devfn in _DEVFN[lo:hi:stride]]
        rid += len(range(lo, hi, stride)) * stride
    return out
