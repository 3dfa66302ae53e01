"""One small decoder per capability (pciutils' ``ls-caps.c``/``ls-ecaps.c``), producing data.

Each decoder fetches only the bytes it needs through ``Walk.read`` (which notes a source that
ran out), checks bounds first, and records what is wrong in ``Walk.errors`` instead of printing.
The walk that calls them is ``vfctl.pci.configspace``; the C twin is ``_configspace.c``.
"""

from __future__ import annotations

import struct
from _collections_abc import Callable  # collections.abc without the collections package

from vfctl.pci import regs as R
from vfctl.pci.capnames import DEVICE_TYPES, LINK_SPEEDS

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any

Doc = dict[str, "Any"]  # a run-time alias (configspace imports it): Any named, not imported
Fetch = Callable[[int, int], bytes | None]


class Walk:
    """Mutable state of one parse: errors found and whether the source ran out."""

    __slots__ = ("errors", "truncated")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.truncated = False

    def read(self, fetch: Fetch, off: int, n: int) -> bytes | None:
        b = fetch(off, n)
        if b is None:
            self.truncated = True
        return b

    def body(self, fetch: Fetch, pos: int, first: int, end: int, name: str) -> bytes | None:
        """Registers [first, end) of capability ``name`` at ``pos``, bounds-checked before the
        fetch: an extended one (pos >= 0x100) within 4 KiB, a standard one within 256 bytes."""
        if pos >= R.PCI_CFG_SPACE_SIZE and pos + end > R.PCI_CFG_SPACE_EXP_SIZE:
            self.errors.append(f"{name} capability at 0x{pos:03x} overruns config space")
            return None
        if pos < R.PCI_CFG_SPACE_SIZE and pos + end > R.PCI_CFG_SPACE_SIZE:
            self.errors.append(f"{name} capability at 0x{pos:02x} overruns the 256-byte header")
            return None
        return self.read(fetch, pos + first, end - first)


def u16(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", b, off)[0])


def u32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", b, off)[0])


def hex4(v: int) -> str:
    return f"{v:04x}"


def decode_pcie(fetch: Fetch, pos: int, flags: int, st: Walk) -> Doc:
    dtype = (flags & R.PCI_EXP_FLAGS_TYPE) >> R.PCI_EXP_FLAGS_TYPE_SHIFT
    doc: Doc = {
        "version": flags & R.PCI_EXP_FLAGS_VERS,
        "device_type": DEVICE_TYPES.get(dtype, "unknown"),
        "link_speed_max": None,
        "link_width_max": None,
        "link_speed": None,
        "link_width": None,
    }
    # Root-complex-integrated functions have no link (PCIe Base 7.5.3).
    if dtype in (R.PCI_EXP_TYPE_ROOT_INT_EP, R.PCI_EXP_TYPE_ROOT_EC):
        return doc
    b = st.body(fetch, pos, R.PCI_EXP_LNKCAP, R.PCI_EXP_LNK_REGS_END, "PCI Express")
    if b is None:
        return doc
    lnkcap = u32(b, 0)
    lnksta = u16(b, R.PCI_EXP_LNKSTA - R.PCI_EXP_LNKCAP)
    doc["link_speed_max"] = LINK_SPEEDS.get(lnkcap & R.PCI_EXP_LNK_SPEED, "unknown")
    doc["link_width_max"] = (lnkcap & R.PCI_EXP_LNK_WIDTH) >> R.PCI_EXP_LNK_WIDTH_SHIFT
    doc["link_speed"] = LINK_SPEEDS.get(lnksta & R.PCI_EXP_LNK_SPEED, "unknown")
    doc["link_width"] = (lnksta & R.PCI_EXP_LNK_WIDTH) >> R.PCI_EXP_LNK_WIDTH_SHIFT
    return doc


def decode_ssvid(fetch: Fetch, pos: int, st: Walk) -> tuple[str, str] | None:
    b = st.body(fetch, pos, R.PCI_SSVID_VENDOR_ID, R.PCI_SSVID_SIZEOF, "Subsystem ID")
    if b is None:
        return None
    return hex4(u16(b, 0)), hex4(u16(b, R.PCI_SSVID_DEVICE_ID - R.PCI_SSVID_VENDOR_ID))


def _vf_bars(bars: list[int], st: Walk) -> list[Doc]:
    out: list[Doc] = []
    i = 0
    while i < R.PCI_IOV_NUM_BAR:
        lo = bars[i]
        is64 = (lo & R.PCI_BASE_ADDRESS_MEM_TYPE_MASK) == R.PCI_BASE_ADDRESS_MEM_TYPE_64
        hi = 0
        if is64:
            if i + 1 < R.PCI_IOV_NUM_BAR:
                hi = bars[i + 1]
            else:
                st.errors.append(f"VF BAR {i} is 64-bit but has no upper half")
        if lo & R.PCI_BASE_ADDRESS_SPACE_IO:
            st.errors.append(f"VF BAR {i} has the I/O space bit set")
        if lo or hi:
            out.append(
                {
                    "index": i,
                    "address": (hi << 32) | (lo & R.PCI_BASE_ADDRESS_MEM_MASK),
                    "type": "mem64" if is64 else "mem32",
                    "prefetchable": bool(lo & R.PCI_BASE_ADDRESS_MEM_PREFETCH),
                }
            )
        i += 2 if is64 else 1
    return out


def decode_sriov(fetch: Fetch, pos: int, st: Walk) -> Doc | None:
    b = st.body(fetch, pos, R.PCI_IOV_CAP, R.PCI_IOV_FETCH_END, "SR-IOV")
    if b is None:
        return None

    def reg16(r: int) -> int:
        return u16(b, r - R.PCI_IOV_CAP)

    def reg32(r: int) -> int:
        return u32(b, r - R.PCI_IOV_CAP)

    ctrl = reg16(R.PCI_IOV_CTRL)
    bars = [reg32(R.PCI_IOV_BAR_0 + 4 * i) for i in range(R.PCI_IOV_NUM_BAR)]
    return {
        "offset": pos,
        "total_vfs": reg16(R.PCI_IOV_TOTAL_VF),
        "initial_vfs": reg16(R.PCI_IOV_INITIAL_VF),
        "num_vfs": reg16(R.PCI_IOV_NUM_VF),
        "vf_offset": reg16(R.PCI_IOV_VF_OFFSET),
        "vf_stride": reg16(R.PCI_IOV_VF_STRIDE),
        "vf_device_id": hex4(reg16(R.PCI_IOV_VF_DID)),
        "function_dependency_link": b[R.PCI_IOV_FUNC_LINK - R.PCI_IOV_CAP],
        "supported_page_sizes": reg32(R.PCI_IOV_SUP_PGSIZE),
        "system_page_size": reg32(R.PCI_IOV_SYS_PGSIZE),
        "vf_enable": bool(ctrl & R.PCI_IOV_CTRL_VFE),
        "vf_mse": bool(ctrl & R.PCI_IOV_CTRL_MSE),
        "ari_hierarchy": bool(ctrl & R.PCI_IOV_CTRL_ARI),
        "vf_migration_capable": bool(reg32(R.PCI_IOV_CAP) & R.PCI_IOV_CAP_VFM),
        "vf_bars": _vf_bars(bars, st),
    }


def decode_ari(fetch: Fetch, pos: int, st: Walk) -> Doc | None:
    b = st.body(fetch, pos, R.PCI_ARI_CAP, R.PCI_ARI_SIZEOF, "ARI")
    if b is None:
        return None
    cap = u16(b, 0)
    ctrl = u16(b, R.PCI_ARI_CTRL - R.PCI_ARI_CAP)
    return {
        "mfvc": bool(cap & R.PCI_ARI_CAP_MFVC),
        "acs": bool(cap & R.PCI_ARI_CAP_ACS),
        "next_function": (cap >> R.PCI_ARI_CAP_NFN_SHIFT) & R.PCI_ARI_CAP_NFN_MASK,
        "mfvc_group": bool(ctrl & R.PCI_ARI_CTRL_MFVC),
        "acs_group": bool(ctrl & R.PCI_ARI_CTRL_ACS),
        "function_group": (ctrl >> R.PCI_ARI_CTRL_FG_SHIFT) & R.PCI_ARI_CTRL_FG_MASK,
    }


ACS_BITS: tuple[tuple[str, int], ...] = (
    ("source_validation", R.PCI_ACS_SV),
    ("translation_blocking", R.PCI_ACS_TB),
    ("request_redirect", R.PCI_ACS_RR),
    ("completion_redirect", R.PCI_ACS_CR),
    ("upstream_forwarding", R.PCI_ACS_UF),
    ("egress_control", R.PCI_ACS_EC),
    ("direct_translated", R.PCI_ACS_DT),
)


def decode_acs(fetch: Fetch, pos: int, st: Walk) -> Doc | None:
    b = st.body(fetch, pos, R.PCI_ACS_CAP, R.PCI_ACS_SIZEOF, "ACS")
    if b is None:
        return None
    cap = u16(b, 0)
    ctrl = u16(b, R.PCI_ACS_CTRL - R.PCI_ACS_CAP)
    doc: Doc = {name: bool(cap & bit) for name, bit in ACS_BITS}
    doc.update({"ctrl_" + name: bool(ctrl & bit) for name, bit in ACS_BITS})
    return doc
