"""Build PCI config spaces from the PCIe register layout, for the simulator's devices.

The simulator needs config files that lspci and vfctl's own decoder read like real hardware:
a type 0/1 header, a standard capability chain (PM, MSI, MSI-X, PCIe, SSVID) and an extended
chain (AER, DSN, ARI, ACS, SR-IOV). Register offsets follow the PCI/PCIe/SR-IOV specifications
(the same names pciutils' ``header.h`` uses); nothing is copied from a dump.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONFIG_SIZE = 4096
LEGACY_SIZE = 256

# Type 0/1 header
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_STATUS = 0x06
PCI_REVISION_ID = 0x08
PCI_CLASS_PROG = 0x09
PCI_CACHE_LINE_SIZE = 0x0C
PCI_HEADER_TYPE = 0x0E
PCI_BASE_ADDRESS_0 = 0x10
PCI_PRIMARY_BUS = 0x18
PCI_SECONDARY_BUS = 0x19
PCI_SUBORDINATE_BUS = 0x1A
PCI_MEMORY_BASE = 0x20
PCI_MEMORY_LIMIT = 0x22
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_CAPABILITY_LIST = 0x34
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D

PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_STATUS_CAP_LIST = 0x10

# Capability IDs
PCI_CAP_ID_PM = 0x01
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_SSVID = 0x0D
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
PCI_EXT_CAP_ID_ERR = 0x0001
PCI_EXT_CAP_ID_DSN = 0x0003
PCI_EXT_CAP_ID_ACS = 0x000D
PCI_EXT_CAP_ID_ARI = 0x000E
PCI_EXT_CAP_ID_SRIOV = 0x0010

# PCIe capability registers
PCI_EXP_FLAGS = 0x02
PCI_EXP_DEVCAP = 0x04
PCI_EXP_DEVCTL = 0x08
PCI_EXP_LNKCAP = 0x0C
PCI_EXP_LNKSTA = 0x12
PCI_EXP_SLTCAP = 0x14
PCI_EXP_DEVCAP2 = 0x24
PCI_EXP_LNKCAP2 = 0x2C
PCI_EXP_LNKCTL2 = 0x30
PCI_EXP_TYPE_ENDPOINT = 0x0
PCI_EXP_TYPE_ROOT_PORT = 0x4
PCI_EXP_FLAGS_SLOT = 0x0100
PCI_EXP_DEVCAP_FLR = 1 << 28
PCI_EXP_DEVCAP_RBER = 1 << 15
PCI_EXP_LNKSTA_DLLLA = 1 << 13

# SR-IOV capability registers (offsets inside the capability)
PCI_SRIOV_CAP = 0x04
PCI_SRIOV_CTRL = 0x08
PCI_SRIOV_CTRL_VFE = 0x01
PCI_SRIOV_CTRL_MSE = 0x08
PCI_SRIOV_STATUS = 0x0A
PCI_SRIOV_INITIAL_VF = 0x0C
PCI_SRIOV_TOTAL_VF = 0x0E
PCI_SRIOV_NUM_VF = 0x10
PCI_SRIOV_FUNC_LINK = 0x12
PCI_SRIOV_VF_OFFSET = 0x14
PCI_SRIOV_VF_STRIDE = 0x16
PCI_SRIOV_VF_DID = 0x1A
PCI_SRIOV_SUP_PGSIZE = 0x1C
PCI_SRIOV_SYS_PGSIZE = 0x20
PCI_SRIOV_BAR = 0x24

PCI_ARI_CAP = 0x04
PCI_ACS_CAP = 0x04
PCI_ACS_CTRL = 0x06
# ACS: source validation, translation blocking, P2P request redirect, completion redirect,
# upstream forwarding: what a root port needs for its devices to get their own IOMMU groups.
ACS_ROOT_PORT_CAPS = 0x001F

MAX_EXT_CAPS = 960  # the kernel's loop bound: (4096 - 256) / 4


@dataclass(frozen=True)
class Bar:
    """A BAR as both the config register and sysfs ``resource`` see it."""

    index: int
    size: int
    addr: int = 0
    kind: str = "mem64"  # "mem32" | "mem64" | "io"
    prefetch: bool = False

    def register(self) -> int:
        if self.kind == "io":
            return (self.addr & ~0x3) | 0x1
        low = self.addr & ~0xF
        if self.kind == "mem64":
            low |= 0x4
        if self.prefetch:
            low |= 0x8
        return low

    def resource_flags(self) -> int:
        """IORESOURCE_* flags as the kernel prints them in ``resource``."""
        if self.kind == "io":
            return 0x40101
        flags = 0x40200 | (0x4 if self.kind == "mem64" else 0)
        if self.kind == "mem64":
            flags |= 0x100000
        if self.prefetch:
            flags |= 0x2008
        return flags


@dataclass
class Function:
    """What one PCI function's config space is made of."""

    vendor: int
    device: int
    class_code: int
    revision: int = 1
    subsys_vendor: int = 0
    subsys_device: int = 0
    header_type: int = 0
    multifunction: bool = False
    irq_pin: int = 1
    irq_line: int = 0
    bars: list[Bar] = field(default_factory=list)
    # bridge (type 1) only
    buses: tuple[int, int, int] = (0, 0, 0)
    # standard capabilities, in chain order: (offset, kind, params)
    caps: list[tuple[int, str, dict[str, int]]] = field(default_factory=list)
    ext_caps: list[tuple[int, str, dict[str, int]]] = field(default_factory=list)
    vf_bars: list[Bar] = field(default_factory=list)


class _Space:
    def __init__(self, size: int = CONFIG_SIZE) -> None:
        self.b = bytearray(size)

    def w8(self, off: int, v: int) -> None:
        self.b[off] = v & 0xFF

    def w16(self, off: int, v: int) -> None:
        struct.pack_into("<H", self.b, off, v & 0xFFFF)

    def w32(self, off: int, v: int) -> None:
        struct.pack_into("<I", self.b, off, v & 0xFFFFFFFF)


def _cap_pm(s: _Space, o: int, p: dict[str, int]) -> None:
    # version 3, PME from D0/D3hot/D3cold (as most NICs)
    s.w16(o + 2, 0x0003 | p.get("pme", 0xC800) | (p.get("dsi", 1) << 5))
    s.w16(o + 4, 0x2000 if p.get("dscale", 1) else 0)


def _cap_msi(s: _Space, o: int, p: dict[str, int]) -> None:
    ctrl = (p.get("mmc", 0) << 1) | 0x80  # 64-bit
    if p.get("maskable", 1):
        ctrl |= 0x100
    s.w16(o + 2, ctrl)


def _cap_msix(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + 2, (p["vectors"] - 1) & 0x7FF)
    s.w32(o + 4, p.get("table_off", 0) | p.get("bar", 3))
    s.w32(o + 8, p.get("pba_off", 0x2000) | p.get("bar", 3))


def _cap_ssvid(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + 4, p["vendor"])
    s.w16(o + 6, p["device"])


def _cap_pcie(s: _Space, o: int, p: dict[str, int]) -> None:
    dtype = p.get("type", PCI_EXP_TYPE_ENDPOINT)
    flags = 0x2 | (dtype << 4)
    if dtype == PCI_EXP_TYPE_ROOT_PORT:
        flags |= PCI_EXP_FLAGS_SLOT
    s.w16(o + PCI_EXP_FLAGS, flags)
    devcap = p.get("mps", 2) | PCI_EXP_DEVCAP_RBER
    if p.get("flr", 1) and dtype == PCI_EXP_TYPE_ENDPOINT:
        devcap |= PCI_EXP_DEVCAP_FLR
    s.w32(o + PCI_EXP_DEVCAP, devcap)
    s.w16(o + PCI_EXP_DEVCTL, 0x2810 | (1 << 5 if p.get("mps", 2) else 0))
    speed, width = p.get("speed", 2), p.get("width", 8)
    # ASPM L0s+L1 supported, port number in the top byte
    s.w32(o + PCI_EXP_LNKCAP, speed | (width << 4) | (0x3 << 10) | (p.get("port", 0) << 24))
    lnksta = p.get("cur_speed", speed) | (p.get("cur_width", width) << 4)
    if dtype == PCI_EXP_TYPE_ROOT_PORT:
        lnksta |= PCI_EXP_LNKSTA_DLLLA
        s.w32(o + PCI_EXP_SLTCAP, (p.get("slot", 0) << 19) | 0x60)
    s.w16(o + PCI_EXP_LNKSTA, lnksta | 0x1000)
    s.w32(o + PCI_EXP_DEVCAP2, 0x1F)
    s.w32(o + PCI_EXP_LNKCAP2, ((1 << speed) - 1) << 1)
    s.w16(o + PCI_EXP_LNKCTL2, speed)


def _ext_aer(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w32(o + 0x0C, 0x00062030)  # Uncorrectable Error Severity: the spec's default
    s.w32(o + 0x14, 0x00002000)  # Correctable Error Mask: Advisory Non-Fatal masked


def _ext_dsn(s: _Space, o: int, p: dict[str, int]) -> None:
    serial = p.get("serial", 0)
    s.w32(o + 4, serial & 0xFFFFFFFF)
    s.w32(o + 8, serial >> 32)


def _ext_ari(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + PCI_ARI_CAP, (p.get("next_fn", 0) & 0xFF) << 8)


def _ext_acs(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + PCI_ACS_CAP, p.get("caps", ACS_ROOT_PORT_CAPS))
    s.w16(o + PCI_ACS_CTRL, p.get("ctrl", ACS_ROOT_PORT_CAPS))


def _ext_sriov(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + PCI_SRIOV_INITIAL_VF, p.get("initial", p["total"]))
    s.w16(o + PCI_SRIOV_TOTAL_VF, p["total"])
    s.w8(o + PCI_SRIOV_FUNC_LINK, p.get("func_link", 0))
    s.w16(o + PCI_SRIOV_VF_OFFSET, p["offset"])
    s.w16(o + PCI_SRIOV_VF_STRIDE, p["stride"])
    s.w16(o + PCI_SRIOV_VF_DID, p["vf_device"])
    s.w32(o + PCI_SRIOV_SUP_PGSIZE, p.get("page_sizes", 0x553))
    s.w32(o + PCI_SRIOV_SYS_PGSIZE, 1)


_STD = {
    "pm": (PCI_CAP_ID_PM, _cap_pm),
    "msi": (PCI_CAP_ID_MSI, _cap_msi),
    "msix": (PCI_CAP_ID_MSIX, _cap_msix),
    "ssvid": (PCI_CAP_ID_SSVID, _cap_ssvid),
    "pcie": (PCI_CAP_ID_EXP, _cap_pcie),
}
_EXT = {
    "aer": (PCI_EXT_CAP_ID_ERR, _ext_aer),
    "dsn": (PCI_EXT_CAP_ID_DSN, _ext_dsn),
    "ari": (PCI_EXT_CAP_ID_ARI, _ext_ari),
    "acs": (PCI_EXT_CAP_ID_ACS, _ext_acs),
    "sriov": (PCI_EXT_CAP_ID_SRIOV, _ext_sriov),
}


def _write_bar(s: _Space, base: int, bar: Bar) -> None:
    off = base + 4 * bar.index
    s.w32(off, bar.register())
    if bar.kind == "mem64":
        s.w32(off + 4, bar.addr >> 32)


def build(fn: Function) -> bytes:
    """Config space bytes (4096) for one function."""
    s = _Space()
    s.w16(PCI_VENDOR_ID, fn.vendor)
    s.w16(PCI_DEVICE_ID, fn.device)
    cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
    if any(b.kind == "io" for b in fn.bars):
        cmd |= PCI_COMMAND_IO
    s.w16(PCI_COMMAND, cmd | 0x400)  # INTx disabled: MSI/MSI-X in use
    s.w16(PCI_STATUS, PCI_STATUS_CAP_LIST if fn.caps else 0)
    s.w8(PCI_REVISION_ID, fn.revision)
    s.w8(PCI_CLASS_PROG, fn.class_code & 0xFF)
    s.w16(PCI_CLASS_PROG + 1, fn.class_code >> 8)
    s.w8(PCI_CACHE_LINE_SIZE, 0x10)
    s.w8(PCI_HEADER_TYPE, fn.header_type | (0x80 if fn.multifunction else 0))
    for bar in fn.bars:
        _write_bar(s, PCI_BASE_ADDRESS_0, bar)
    if fn.header_type == 1:
        s.w8(PCI_PRIMARY_BUS, fn.buses[0])
        s.w8(PCI_SECONDARY_BUS, fn.buses[1])
        s.w8(PCI_SUBORDINATE_BUS, fn.buses[2])
        s.w16(0x1C, 0x00F0)  # I/O window closed
        s.w16(PCI_MEMORY_BASE, 0xFFF0)  # memory windows closed unless told
        s.w16(PCI_MEMORY_LIMIT, 0x0000)
        s.w16(0x24, 0xFFF1)
        s.w16(0x26, 0x0001)
    else:
        s.w16(PCI_SUBSYSTEM_VENDOR_ID, fn.subsys_vendor)
        s.w16(PCI_SUBSYSTEM_ID, fn.subsys_device)
    s.w8(PCI_INTERRUPT_LINE, fn.irq_line)
    s.w8(PCI_INTERRUPT_PIN, fn.irq_pin)
    _chain_std(s, fn.caps)
    _chain_ext(s, fn.ext_caps)
    sriov = find_ext_cap(bytes(s.b), PCI_EXT_CAP_ID_SRIOV)
    if sriov is not None:
        for bar in fn.vf_bars:
            _write_bar(s, sriov + PCI_SRIOV_BAR, bar)
    return bytes(s.b)


def _chain_std(s: _Space, caps: list[tuple[int, str, dict[str, int]]]) -> None:
    if not caps:
        return
    s.w8(PCI_CAPABILITY_LIST, caps[0][0])
    for i, (off, kind, params) in enumerate(caps):
        cap_id, fill = _STD[kind]
        nxt = caps[i + 1][0] if i + 1 < len(caps) else 0
        s.w8(off, cap_id)
        s.w8(off + 1, nxt)
        fill(s, off, params)


def _chain_ext(s: _Space, caps: list[tuple[int, str, dict[str, int]]]) -> None:
    for i, (off, kind, params) in enumerate(caps):
        cap_id, fill = _EXT[kind]
        nxt = caps[i + 1][0] if i + 1 < len(caps) else 0
        s.w32(off, cap_id | (1 << 16) | (nxt << 20))
        fill(s, off, params)


def find_ext_cap(cfg: bytes, cap_id: int) -> int | None:
    """Offset of an extended capability, walking the chain loop-safely as the kernel does."""
    if len(cfg) < CONFIG_SIZE:
        return None
    pos, seen = 0x100, 0
    while pos >= 0x100 and seen < MAX_EXT_CAPS:
        (header,) = struct.unpack_from("<I", cfg, pos)
        if header == 0 or header == 0xFFFFFFFF:
            return None
        if header & 0xFFFF == cap_id:
            return pos
        pos = (header >> 20) & 0xFFC
        seen += 1
    return None


def find_cap(cfg: bytes, cap_id: int) -> int | None:
    """Offset of a standard capability (at most 48 hops, as the kernel walks)."""
    if len(cfg) < 64 or not cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST:
        return None
    pos = cfg[PCI_CAPABILITY_LIST] & 0xFC
    for _ in range(48):
        if pos < 0x40 or pos + 2 > len(cfg):
            return None
        if cfg[pos] == cap_id:
            return pos
        pos = cfg[pos + 1] & 0xFC
    return None


def set_sriov_numvfs(cfg: bytes, num_vfs: int) -> bytes:
    """The PF's config after the kernel wrote NumVFs and set/cleared VF Enable + VF MSE."""
    pos = find_ext_cap(cfg, PCI_EXT_CAP_ID_SRIOV)
    if pos is None:
        return cfg
    b = bytearray(cfg)
    struct.pack_into("<H", b, pos + PCI_SRIOV_NUM_VF, num_vfs)
    (ctrl,) = struct.unpack_from("<H", b, pos + PCI_SRIOV_CTRL)
    bits = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE
    ctrl = ctrl | bits if num_vfs else ctrl & ~bits
    struct.pack_into("<H", b, pos + PCI_SRIOV_CTRL, ctrl)
    return bytes(b)


def sriov_fields(cfg: bytes) -> dict[str, int] | None:
    """The SR-IOV registers the simulator needs (None without the capability)."""
    pos = find_ext_cap(cfg, PCI_EXT_CAP_ID_SRIOV)
    if pos is None:
        return None

    def u16(off: int) -> int:
        return int(struct.unpack_from("<H", cfg, pos + off)[0])

    return {
        "offset_in_config": pos,
        "total": u16(PCI_SRIOV_TOTAL_VF),
        "initial": u16(PCI_SRIOV_INITIAL_VF),
        "num": u16(PCI_SRIOV_NUM_VF),
        "ctrl": u16(PCI_SRIOV_CTRL),
        "vf_offset": u16(PCI_SRIOV_VF_OFFSET),
        "vf_stride": u16(PCI_SRIOV_VF_STRIDE),
        "vf_device": u16(PCI_SRIOV_VF_DID),
    }


def vf_function(pf_cfg: bytes) -> bytes:
    """A VF's own config: vendor/device read ffff (SR-IOV spec), BARs zero (they live in the
    PF's SR-IOV capability), MSI-X and PCIe endpoint caps, AER and ARI like the 82576's VFs."""
    rev = pf_cfg[PCI_REVISION_ID]
    cls = pf_cfg[PCI_CLASS_PROG] | (pf_cfg[PCI_CLASS_PROG + 1] << 8) | (pf_cfg[0x0B] << 16)
    (sv, sd) = struct.unpack_from("<HH", pf_cfg, PCI_SUBSYSTEM_VENDOR_ID)
    link = {"speed": 1, "width": 1}
    exp = find_cap(pf_cfg, PCI_CAP_ID_EXP)
    if exp is not None:
        (lnkcap,) = struct.unpack_from("<I", pf_cfg, exp + PCI_EXP_LNKCAP)
        link = {"speed": lnkcap & 0xF, "width": (lnkcap >> 4) & 0x3F}
    ext: list[tuple[int, str, dict[str, int]]] = [(0x100, "aer", {})]
    if find_ext_cap(pf_cfg, PCI_EXT_CAP_ID_ARI) is not None:
        ext.append((0x150, "ari", {}))
    fn = Function(
        vendor=0xFFFF,
        device=0xFFFF,
        class_code=cls,
        revision=rev,
        subsys_vendor=sv,
        subsys_device=sd,
        irq_pin=0,
        caps=[(0x70, "msix", {"vectors": 3, "bar": 3}), (0xA0, "pcie", {"mps": 2, **link})],
        ext_caps=ext,
    )
    b = bytearray(build(fn))
    struct.pack_into("<H", b, PCI_COMMAND, 0x0400)  # VF memory space is the PF's VF MSE
    return bytes(b)
