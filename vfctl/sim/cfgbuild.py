"""Build PCI config spaces from the PCIe register layout, for the simulator's devices.

The simulator needs config files that lspci and vfctl's own decoder read like real hardware:
a type 0/1 header, a standard capability chain (PM, MSI, MSI-X, PCIe, SSVID) and an extended
chain (AER, DSN, ARI, ACS, SR-IOV). Register offsets and bits come from ``vfctl.pci.regs`` (the one
Python definition, shared with the decoder); nothing is copied from a dump.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vfctl.pci import regs as R

CONFIG_SIZE = R.PCI_CFG_SPACE_EXP_SIZE
# ACS: source validation, translation blocking, P2P request redirect, completion redirect,
# upstream forwarding: what a root port needs for its devices to get their own IOMMU groups.
ACS_ROOT_PORT_CAPS = R.PCI_ACS_SV | R.PCI_ACS_TB | R.PCI_ACS_RR | R.PCI_ACS_CR | R.PCI_ACS_UF


@dataclass(frozen=True)
class Bar:
    """A BAR as both the config register and sysfs ``resource`` see it."""

    index: int
    size: int
    addr: int = 0
    kind: str = "mem64"  # "mem32" | "mem64" | "io"
    prefetch: bool = False

    def register(self) -> int:
        """The BAR register (the low dword of a 64-bit BAR)."""
        if self.kind == "io":
            return (self.addr & R.PCI_BASE_ADDRESS_IO_MASK) | R.PCI_BASE_ADDRESS_SPACE_IO
        low = self.addr & R.PCI_BASE_ADDRESS_MEM_MASK
        if self.kind == "mem64":
            low |= R.PCI_BASE_ADDRESS_MEM_TYPE_64
        if self.prefetch:
            low |= R.PCI_BASE_ADDRESS_MEM_PREFETCH
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
    s.w16(o + R.PCI_PM_PMC, 0x0003 | p.get("pme", 0xC800) | (p.get("dsi", 1) << 5))
    s.w16(o + R.PCI_PM_CTRL, 0x2000 if p.get("dscale", 1) else 0)


def _cap_msi(s: _Space, o: int, p: dict[str, int]) -> None:
    ctrl = (p.get("mmc", 0) << 1) | R.PCI_MSI_FLAGS_64BIT
    if p.get("maskable", 1):
        ctrl |= R.PCI_MSI_FLAGS_MASK_BIT
    s.w16(o + R.PCI_MSI_FLAGS, ctrl)


def _cap_msix(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + R.PCI_MSIX_FLAGS, (p["vectors"] - 1) & R.PCI_MSIX_FLAGS_QSIZE)
    s.w32(o + R.PCI_MSIX_TABLE, p.get("table_off", 0) | p.get("bar", 3))
    s.w32(o + R.PCI_MSIX_PBA, p.get("pba_off", 0x2000) | p.get("bar", 3))


def _cap_ssvid(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + R.PCI_SSVID_VENDOR_ID, p["vendor"])
    s.w16(o + R.PCI_SSVID_DEVICE_ID, p["device"])


def _cap_pcie(s: _Space, o: int, p: dict[str, int]) -> None:
    dtype = p.get("type", R.PCI_EXP_TYPE_ENDPOINT)
    flags = 0x2 | (dtype << R.PCI_EXP_FLAGS_TYPE_SHIFT)
    if dtype == R.PCI_EXP_TYPE_ROOT_PORT:
        flags |= R.PCI_EXP_FLAGS_SLOT
    s.w16(o + R.PCI_EXP_FLAGS, flags)
    devcap = p.get("mps", 2) | R.PCI_EXP_DEVCAP_RBER
    if p.get("flr", 1) and dtype == R.PCI_EXP_TYPE_ENDPOINT:
        devcap |= R.PCI_EXP_DEVCAP_FLR
    s.w32(o + R.PCI_EXP_DEVCAP, devcap)
    s.w16(o + R.PCI_EXP_DEVCTL, 0x2810 | (1 << 5 if p.get("mps", 2) else 0))
    speed, width = p.get("speed", 2), p.get("width", 8)
    # ASPM L0s+L1 supported, port number in the top byte
    lnkcap = speed | (width << R.PCI_EXP_LNK_WIDTH_SHIFT) | (0x3 << 10) | (p.get("port", 0) << 24)
    s.w32(o + R.PCI_EXP_LNKCAP, lnkcap)
    lnksta = p.get("cur_speed", speed) | (p.get("cur_width", width) << R.PCI_EXP_LNK_WIDTH_SHIFT)
    if dtype == R.PCI_EXP_TYPE_ROOT_PORT:
        lnksta |= R.PCI_EXP_LNKSTA_DL_ACT
        s.w32(o + R.PCI_EXP_SLTCAP, (p.get("slot", 0) << 19) | 0x60)
    s.w16(o + R.PCI_EXP_LNKSTA, lnksta | 0x1000)
    s.w32(o + R.PCI_EXP_DEVCAP2, 0x1F)
    s.w32(o + R.PCI_EXP_LNKCAP2, ((1 << speed) - 1) << 1)
    s.w16(o + R.PCI_EXP_LNKCTL2, speed)


def _ext_aer(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w32(o + R.PCI_ERR_UNCOR_SEVER, 0x00062030)  # the spec's default severities
    s.w32(o + R.PCI_ERR_COR_MASK, 0x00002000)  # Advisory Non-Fatal masked


def _ext_dsn(s: _Space, o: int, p: dict[str, int]) -> None:
    serial = p.get("serial", 0)
    s.w32(o + R.PCI_DSN_SERIAL_LOW, serial & 0xFFFFFFFF)
    s.w32(o + R.PCI_DSN_SERIAL_HIGH, serial >> 32)


def _ext_ari(s: _Space, o: int, p: dict[str, int]) -> None:
    nfn = (p.get("next_fn", 0) & R.PCI_ARI_CAP_NFN_MASK) << R.PCI_ARI_CAP_NFN_SHIFT
    s.w16(o + R.PCI_ARI_CAP, nfn)


def _ext_acs(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + R.PCI_ACS_CAP, p.get("caps", ACS_ROOT_PORT_CAPS))
    s.w16(o + R.PCI_ACS_CTRL, p.get("ctrl", ACS_ROOT_PORT_CAPS))


def _ext_sriov(s: _Space, o: int, p: dict[str, int]) -> None:
    s.w16(o + R.PCI_IOV_INITIAL_VF, p.get("initial", p["total"]))
    s.w16(o + R.PCI_IOV_TOTAL_VF, p["total"])
    s.w8(o + R.PCI_IOV_FUNC_LINK, p.get("func_link", 0))
    s.w16(o + R.PCI_IOV_VF_OFFSET, p["offset"])
    s.w16(o + R.PCI_IOV_VF_STRIDE, p["stride"])
    s.w16(o + R.PCI_IOV_VF_DID, p["vf_device"])
    s.w32(o + R.PCI_IOV_SUP_PGSIZE, p.get("page_sizes", 0x553))
    s.w32(o + R.PCI_IOV_SYS_PGSIZE, 1)


_STD = {
    "pm": (R.PCI_CAP_ID_PM, _cap_pm),
    "msi": (R.PCI_CAP_ID_MSI, _cap_msi),
    "msix": (R.PCI_CAP_ID_MSIX, _cap_msix),
    "ssvid": (R.PCI_CAP_ID_SSVID, _cap_ssvid),
    "pcie": (R.PCI_CAP_ID_EXP, _cap_pcie),
}
_EXT = {
    "aer": (R.PCI_EXT_CAP_ID_ERR, _ext_aer),
    "dsn": (R.PCI_EXT_CAP_ID_DSN, _ext_dsn),
    "ari": (R.PCI_EXT_CAP_ID_ARI, _ext_ari),
    "acs": (R.PCI_EXT_CAP_ID_ACS, _ext_acs),
    "sriov": (R.PCI_EXT_CAP_ID_SRIOV, _ext_sriov),
}


def _write_bar(s: _Space, base: int, bar: Bar) -> None:
    off = base + 4 * bar.index
    s.w32(off, bar.register())
    if bar.kind == "mem64":
        s.w32(off + 4, bar.addr >> 32)


def build(fn: Function) -> bytes:
    """Config space bytes (4096) for one function."""
    s = _Space()
    s.w16(R.PCI_VENDOR_ID, fn.vendor)
    s.w16(R.PCI_DEVICE_ID, fn.device)
    cmd = R.PCI_COMMAND_MEMORY | R.PCI_COMMAND_MASTER
    if any(b.kind == "io" for b in fn.bars):
        cmd |= R.PCI_COMMAND_IO
    s.w16(R.PCI_COMMAND, cmd | R.PCI_COMMAND_DISABLE_INTX)  # MSI/MSI-X in use
    s.w16(R.PCI_STATUS, R.PCI_STATUS_CAP_LIST if fn.caps else 0)
    s.w8(R.PCI_REVISION_ID, fn.revision)
    s.w8(R.PCI_CLASS_PROG, fn.class_code & 0xFF)
    s.w16(R.PCI_CLASS_DEVICE, fn.class_code >> 8)
    s.w8(R.PCI_CACHE_LINE_SIZE, 0x10)
    s.w8(R.PCI_HEADER_TYPE, fn.header_type | (R.PCI_HEADER_TYPE_MFD if fn.multifunction else 0))
    for bar in fn.bars:
        _write_bar(s, R.PCI_BASE_ADDRESS_0, bar)
    if fn.header_type == 1:
        s.w8(R.PCI_PRIMARY_BUS, fn.buses[0])
        s.w8(R.PCI_SECONDARY_BUS, fn.buses[1])
        s.w8(R.PCI_SUBORDINATE_BUS, fn.buses[2])
        s.w16(R.PCI_IO_BASE, 0x00F0)  # I/O window closed
        s.w16(R.PCI_MEMORY_BASE, 0xFFF0)  # memory windows closed unless told
        s.w16(R.PCI_MEMORY_LIMIT, 0x0000)
        s.w16(R.PCI_PREF_MEMORY_BASE, 0xFFF1)
        s.w16(R.PCI_PREF_MEMORY_LIMIT, 0x0001)
    else:
        s.w16(R.PCI_SUBSYSTEM_VENDOR_ID, fn.subsys_vendor)
        s.w16(R.PCI_SUBSYSTEM_ID, fn.subsys_device)
    s.w8(R.PCI_INTERRUPT_LINE, fn.irq_line)
    s.w8(R.PCI_INTERRUPT_PIN, fn.irq_pin)
    _chain_std(s, fn.caps)
    _chain_ext(s, fn.ext_caps)
    sriov = find_ext_cap(bytes(s.b), R.PCI_EXT_CAP_ID_SRIOV)
    if sriov is not None:
        for bar in fn.vf_bars:
            _write_bar(s, sriov + R.PCI_IOV_BAR_0, bar)
    return bytes(s.b)


def _chain_std(s: _Space, caps: list[tuple[int, str, dict[str, int]]]) -> None:
    if not caps:
        return
    s.w8(R.PCI_CAPABILITY_LIST, caps[0][0])
    for i, (off, kind, params) in enumerate(caps):
        cap_id, fill = _STD[kind]
        nxt = caps[i + 1][0] if i + 1 < len(caps) else 0
        s.w8(off + R.PCI_CAP_LIST_ID, cap_id)
        s.w8(off + R.PCI_CAP_LIST_NEXT, nxt)
        fill(s, off, params)


def _chain_ext(s: _Space, caps: list[tuple[int, str, dict[str, int]]]) -> None:
    for i, (off, kind, params) in enumerate(caps):
        cap_id, fill = _EXT[kind]
        nxt = caps[i + 1][0] if i + 1 < len(caps) else 0
        s.w32(off, cap_id | (1 << R.PCI_EXT_CAP_VER_SHIFT) | (nxt << R.PCI_EXT_CAP_NEXT_SHIFT))
        fill(s, off, params)


def find_ext_cap(cfg: bytes, cap_id: int) -> int | None:
    """Offset of an extended capability, walking the chain loop-safely as the kernel does."""
    if len(cfg) < CONFIG_SIZE:
        return None
    pos, seen = R.PCI_CFG_SPACE_SIZE, 0
    while pos >= R.PCI_CFG_SPACE_SIZE and seen < R.PCI_EXT_CAP_MAX_ENTRIES:
        (header,) = struct.unpack_from("<I", cfg, pos)
        if header == 0 or header == 0xFFFFFFFF:
            return None
        if header & R.PCI_EXT_CAP_ID_MASK == cap_id:
            return pos
        pos = (header >> R.PCI_EXT_CAP_NEXT_SHIFT) & R.PCI_EXT_CAP_NEXT_MASK
        seen += 1
    return None


def find_cap(cfg: bytes, cap_id: int) -> int | None:
    """Offset of a standard capability (at most 48 hops, as the kernel walks)."""
    if len(cfg) < R.PCI_STD_HEADER_SIZEOF or not cfg[R.PCI_STATUS] & R.PCI_STATUS_CAP_LIST:
        return None
    pos = cfg[R.PCI_CAPABILITY_LIST] & R.PCI_CAP_PTR_MASK
    for _ in range(R.PCI_CAP_MAX_ENTRIES):
        if pos < R.PCI_STD_HEADER_SIZEOF or pos + R.PCI_CAP_FLAGS > len(cfg):
            return None
        if cfg[pos + R.PCI_CAP_LIST_ID] == cap_id:
            return pos
        pos = cfg[pos + R.PCI_CAP_LIST_NEXT] & R.PCI_CAP_PTR_MASK
    return None


def set_sriov_numvfs(cfg: bytes, num_vfs: int) -> bytes:
    """The PF's config after the kernel wrote NumVFs and set/cleared VF Enable + VF MSE."""
    pos = find_ext_cap(cfg, R.PCI_EXT_CAP_ID_SRIOV)
    if pos is None:
        return cfg
    b = bytearray(cfg)
    struct.pack_into("<H", b, pos + R.PCI_IOV_NUM_VF, num_vfs)
    (ctrl,) = struct.unpack_from("<H", b, pos + R.PCI_IOV_CTRL)
    bits = R.PCI_IOV_CTRL_VFE | R.PCI_IOV_CTRL_MSE
    ctrl = ctrl | bits if num_vfs else ctrl & ~bits
    struct.pack_into("<H", b, pos + R.PCI_IOV_CTRL, ctrl)
    return bytes(b)


def sriov_fields(cfg: bytes) -> dict[str, int] | None:
    """The SR-IOV registers the simulator needs (None without the capability)."""
    pos = find_ext_cap(cfg, R.PCI_EXT_CAP_ID_SRIOV)
    if pos is None:
        return None

    def u16(off: int) -> int:
        return int(struct.unpack_from("<H", cfg, pos + off)[0])

    return {
        "offset_in_config": pos,
        "total": u16(R.PCI_IOV_TOTAL_VF),
        "initial": u16(R.PCI_IOV_INITIAL_VF),
        "num": u16(R.PCI_IOV_NUM_VF),
        "ctrl": u16(R.PCI_IOV_CTRL),
        "vf_offset": u16(R.PCI_IOV_VF_OFFSET),
        "vf_stride": u16(R.PCI_IOV_VF_STRIDE),
        "vf_device": u16(R.PCI_IOV_VF_DID),
    }


def vf_function(pf_cfg: bytes) -> bytes:
    """A VF's own config: vendor/device read ffff (SR-IOV spec), BARs zero (they live in the
    PF's SR-IOV capability), MSI-X and PCIe endpoint caps, AER and ARI like the 82576's VFs."""
    rev = pf_cfg[R.PCI_REVISION_ID]
    cls = pf_cfg[R.PCI_CLASS_PROG] | struct.unpack_from("<H", pf_cfg, R.PCI_CLASS_DEVICE)[0] << 8
    (sv, sd) = struct.unpack_from("<HH", pf_cfg, R.PCI_SUBSYSTEM_VENDOR_ID)
    link = {"speed": 1, "width": 1}
    exp = find_cap(pf_cfg, R.PCI_CAP_ID_EXP)
    if exp is not None:
        (lnkcap,) = struct.unpack_from("<I", pf_cfg, exp + R.PCI_EXP_LNKCAP)
        width = (lnkcap & R.PCI_EXP_LNK_WIDTH) >> R.PCI_EXP_LNK_WIDTH_SHIFT
        link = {"speed": lnkcap & R.PCI_EXP_LNK_SPEED, "width": width}
    ext: list[tuple[int, str, dict[str, int]]] = [(0x100, "aer", {})]
    if find_ext_cap(pf_cfg, R.PCI_EXT_CAP_ID_ARI) is not None:
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
    # VF memory space is the PF's VF MSE
    struct.pack_into("<H", b, R.PCI_COMMAND, R.PCI_COMMAND_DISABLE_INTX)
    return bytes(b)
