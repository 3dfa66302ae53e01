"""Decode a PCI config space: the pure-Python twin of the C extension ``_configspace``.

Both implementations run the same walk over a ``fetch(offset, length)`` source and fetch
only what a decoder needs (header, one dword per capability header, then the bodies of
SR-IOV, ARI, ACS, PCI Express and bridge subsystem IDs), so a batch over a sysfs tree
reads a few hundred bytes per function instead of 4 KiB.  The Python side is the test
oracle and the fallback when the extension is not built (or ``VFCTL_NO_C=1``).

The document shape is DESIGN §3 ``vfctl decode --json`` (see docs/configspace.md).
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import stat
import struct
from collections.abc import Callable, Sequence
from typing import Any

from vfctl.pci import regs as R

_C_PARSE_FILES: Callable[[list[str]], list[dict[str, Any]]] | None
try:  # pragma: no cover - depends on the build
    _C_PARSE_FILES = getattr(importlib.import_module("vfctl.pci._configspace"), "parse_files", None)
except ImportError:  # pragma: no cover - depends on the build
    _C_PARSE_FILES = None

HAVE_C = _C_PARSE_FILES is not None and os.environ.get("VFCTL_NO_C") != "1"
MAX_ERRORS = 16  # errors listed per document; the rest are counted (C: MAX_ERRORS)
ERROR_LEN = 96  # C: the buffer of one error line, NUL included

Doc = dict[str, Any]
Fetch = Callable[[int, int], bytes | None]

CAP_NAMES: dict[int, str] = {
    0x01: "Power Management",
    0x02: "AGP",
    0x03: "Vital Product Data",
    0x04: "Slot Identification",
    0x05: "MSI",
    0x06: "CompactPCI Hot Swap",
    0x07: "PCI-X",
    0x08: "HyperTransport",
    0x09: "Vendor Specific",
    0x0A: "Debug Port",
    0x0B: "CompactPCI Central Resource Control",
    0x0C: "PCI Hot-Plug",
    0x0D: "Subsystem ID",
    0x0E: "AGP 8x",
    0x0F: "Secure Device",
    0x10: "PCI Express",
    0x11: "MSI-X",
    0x12: "SATA",
    0x13: "PCI Advanced Features",
    0x14: "Enhanced Allocation",
    0x15: "Flattening Portal Bridge",
}

EXT_CAP_NAMES: dict[int, str] = {
    0x0001: "Advanced Error Reporting",
    0x0002: "Virtual Channel",
    0x0003: "Device Serial Number",
    0x0004: "Power Budgeting",
    0x0005: "Root Complex Link Declaration",
    0x0006: "Root Complex Internal Link Control",
    0x0007: "Root Complex Event Collector Endpoint Association",
    0x0008: "Multi-Function Virtual Channel",
    0x0009: "Virtual Channel",
    0x000A: "Root Complex Register Block",
    0x000B: "Vendor Specific",
    0x000C: "Configuration Access Correlation",
    0x000D: "Access Control Services",
    0x000E: "Alternative Routing-ID Interpretation",
    0x000F: "Address Translation Service",
    0x0010: "Single Root I/O Virtualization",
    0x0011: "Multi-Root I/O Virtualization",
    0x0012: "Multicast",
    0x0013: "Page Request Interface",
    0x0015: "Resizable BAR",
    0x0016: "Dynamic Power Allocation",
    0x0017: "TPH Requester",
    0x0018: "Latency Tolerance Reporting",
    0x0019: "Secondary PCI Express",
    0x001A: "Protocol Multiplexing",
    0x001B: "Process Address Space ID",
    0x001C: "LN Requester",
    0x001D: "Downstream Port Containment",
    0x001E: "L1 PM Substates",
    0x001F: "Precision Time Measurement",
    0x0020: "PCI Express over M-PHY",
    0x0021: "FRS Queueing",
    0x0022: "Readiness Time Reporting",
    0x0023: "Designated Vendor-Specific",
    0x0024: "VF Resizable BAR",
    0x0025: "Data Link Feature",
    0x0026: "Physical Layer 16.0 GT/s",
    0x0027: "Lane Margining at the Receiver",
    0x0028: "Hierarchy ID",
    0x0029: "Native PCIe Enclosure Management",
    0x002A: "Physical Layer 32.0 GT/s",
    0x002B: "Alternate Protocol",
    0x002C: "System Firmware Intermediary",
    0x002D: "Shadow Functions",
    0x002E: "Data Object Exchange",
    0x002F: "Device 3",
    0x0030: "Integrity and Data Encryption",
    0x0031: "Physical Layer 64.0 GT/s",
    0x0032: "Flit Logging",
    0x0033: "Flit Performance Measurement",
    0x0034: "Flit Error Injection",
}

DEVICE_TYPES: dict[int, str] = {
    0x0: "endpoint",
    0x1: "legacy_endpoint",
    0x4: "root_port",
    0x5: "upstream_port",
    0x6: "downstream_port",
    0x7: "pcie_pci_bridge",
    0x8: "pci_pcie_bridge",
    0x9: "rc_integrated_endpoint",
    0xA: "rc_event_collector",
}

# Same strings as lspci, so `link_speed` compares with `lspci -vvv` LnkCap/LnkSta as-is.
LINK_SPEEDS: dict[int, str] = {
    1: "2.5GT/s",
    2: "5GT/s",
    3: "8GT/s",
    4: "16GT/s",
    5: "32GT/s",
    6: "64GT/s",
}

CONFIG_SIZES = (R.PCI_STD_HEADER_SIZEOF, R.PCI_CFG_SPACE_SIZE, R.PCI_CFG_SPACE_EXP_SIZE)


def _u16(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", b, off)[0])


def _u32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", b, off)[0])


def _hex4(v: int) -> str:
    return f"{v:04x}"


# --- one small decoder per capability --------------------------------------------------


def _decode_pcie(fetch: Fetch, pos: int, flags: int, st: _Walk) -> Doc:
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
    if pos + R.PCI_EXP_LNK_REGS_END > R.PCI_CFG_SPACE_SIZE:
        st.errors.append(f"PCI Express capability at 0x{pos:02x} overruns the 256-byte header")
        return doc
    b = st.read(fetch, pos + R.PCI_EXP_LNKCAP, R.PCI_EXP_LNK_REGS_END - R.PCI_EXP_LNKCAP)
    if b is None:
        return doc
    lnkcap = _u32(b, 0)
    lnksta = _u16(b, R.PCI_EXP_LNKSTA - R.PCI_EXP_LNKCAP)
    doc["link_speed_max"] = LINK_SPEEDS.get(lnkcap & R.PCI_EXP_LNK_SPEED, "unknown")
    doc["link_width_max"] = (lnkcap & R.PCI_EXP_LNK_WIDTH) >> R.PCI_EXP_LNK_WIDTH_SHIFT
    doc["link_speed"] = LINK_SPEEDS.get(lnksta & R.PCI_EXP_LNK_SPEED, "unknown")
    doc["link_width"] = (lnksta & R.PCI_EXP_LNK_WIDTH) >> R.PCI_EXP_LNK_WIDTH_SHIFT
    return doc


def _decode_ssvid(fetch: Fetch, pos: int, st: _Walk) -> tuple[str, str] | None:
    if pos + R.PCI_SSVID_SIZEOF > R.PCI_CFG_SPACE_SIZE:
        st.errors.append(f"Subsystem ID capability at 0x{pos:02x} overruns the 256-byte header")
        return None
    b = st.read(fetch, pos + R.PCI_SSVID_VENDOR_ID, R.PCI_SSVID_SIZEOF - R.PCI_SSVID_VENDOR_ID)
    if b is None:
        return None
    return _hex4(_u16(b, 0)), _hex4(_u16(b, R.PCI_SSVID_DEVICE_ID - R.PCI_SSVID_VENDOR_ID))


def _vf_bars(bars: list[int], st: _Walk) -> list[Doc]:
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


def _decode_sriov(fetch: Fetch, pos: int, st: _Walk) -> Doc | None:
    if pos + R.PCI_IOV_FETCH_END > R.PCI_CFG_SPACE_EXP_SIZE:
        st.errors.append(f"SR-IOV capability at 0x{pos:03x} overruns config space")
        return None
    b = st.read(fetch, pos + R.PCI_IOV_CAP, R.PCI_IOV_FETCH_END - R.PCI_IOV_CAP)
    if b is None:
        return None

    def reg16(r: int) -> int:
        return _u16(b, r - R.PCI_IOV_CAP)

    def reg32(r: int) -> int:
        return _u32(b, r - R.PCI_IOV_CAP)

    ctrl = reg16(R.PCI_IOV_CTRL)
    bars = [reg32(R.PCI_IOV_BAR_0 + 4 * i) for i in range(R.PCI_IOV_NUM_BAR)]
    return {
        "offset": pos,
        "total_vfs": reg16(R.PCI_IOV_TOTAL_VF),
        "initial_vfs": reg16(R.PCI_IOV_INITIAL_VF),
        "num_vfs": reg16(R.PCI_IOV_NUM_VF),
        "vf_offset": reg16(R.PCI_IOV_VF_OFFSET),
        "vf_stride": reg16(R.PCI_IOV_VF_STRIDE),
        "vf_device_id": _hex4(reg16(R.PCI_IOV_VF_DID)),
        "function_dependency_link": b[R.PCI_IOV_FUNC_LINK - R.PCI_IOV_CAP],
        "supported_page_sizes": reg32(R.PCI_IOV_SUP_PGSIZE),
        "system_page_size": reg32(R.PCI_IOV_SYS_PGSIZE),
        "vf_enable": bool(ctrl & R.PCI_IOV_CTRL_VFE),
        "vf_mse": bool(ctrl & R.PCI_IOV_CTRL_MSE),
        "ari_hierarchy": bool(ctrl & R.PCI_IOV_CTRL_ARI),
        "vf_migration_capable": bool(reg32(R.PCI_IOV_CAP) & R.PCI_IOV_CAP_VFM),
        "vf_bars": _vf_bars(bars, st),
    }


def _decode_ari(fetch: Fetch, pos: int, st: _Walk) -> Doc | None:
    if pos + R.PCI_ARI_SIZEOF > R.PCI_CFG_SPACE_EXP_SIZE:
        st.errors.append(f"ARI capability at 0x{pos:03x} overruns config space")
        return None
    b = st.read(fetch, pos + R.PCI_ARI_CAP, R.PCI_ARI_SIZEOF - R.PCI_ARI_CAP)
    if b is None:
        return None
    cap = _u16(b, 0)
    ctrl = _u16(b, R.PCI_ARI_CTRL - R.PCI_ARI_CAP)
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


def _decode_acs(fetch: Fetch, pos: int, st: _Walk) -> Doc | None:
    if pos + R.PCI_ACS_SIZEOF > R.PCI_CFG_SPACE_EXP_SIZE:
        st.errors.append(f"ACS capability at 0x{pos:03x} overruns config space")
        return None
    b = st.read(fetch, pos + R.PCI_ACS_CAP, R.PCI_ACS_SIZEOF - R.PCI_ACS_CAP)
    if b is None:
        return None
    cap = _u16(b, 0)
    ctrl = _u16(b, R.PCI_ACS_CTRL - R.PCI_ACS_CAP)
    doc: Doc = {name: bool(cap & bit) for name, bit in ACS_BITS}
    doc.update({"ctrl_" + name: bool(ctrl & bit) for name, bit in ACS_BITS})
    return doc


# --- the walk --------------------------------------------------------------------------


class _Walk:
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


def _walk(fetch: Fetch, hdr: bytes) -> Doc:
    st = _Walk()
    htype = hdr[R.PCI_HEADER_TYPE] & R.PCI_HEADER_TYPE_MASK
    cls = hdr[R.PCI_CLASS_PROG] | hdr[R.PCI_CLASS_PROG + 1] << 8 | hdr[R.PCI_CLASS_PROG + 2] << 16
    doc: Doc = {
        "vendor_id": _hex4(_u16(hdr, R.PCI_VENDOR_ID)),
        "device_id": _hex4(_u16(hdr, R.PCI_DEVICE_ID)),
        "header_type": htype,
        "class": f"{cls:06x}",
        "subsystem_vendor_id": None,
        "subsystem_id": None,
        "capabilities": [],
        "extended_capabilities": [],
        "sriov": None,
        "ari": None,
        "acs": None,
        "pcie": None,
        "truncated": False,
        "errors": st.errors,
    }
    if htype == R.PCI_HEADER_TYPE_NORMAL:
        ssv = _u16(hdr, R.PCI_SUBSYSTEM_VENDOR_ID)
        if ssv not in (0, 0xFFFF):
            doc["subsystem_vendor_id"] = _hex4(ssv)
            doc["subsystem_id"] = _hex4(_u16(hdr, R.PCI_SUBSYSTEM_ID))
    if htype in (R.PCI_HEADER_TYPE_NORMAL, R.PCI_HEADER_TYPE_BRIDGE):
        ptr_reg = R.PCI_CAPABILITY_LIST
    elif htype == R.PCI_HEADER_TYPE_CARDBUS:
        ptr_reg = R.PCI_CB_CAPABILITY_LIST
    else:
        st.errors.append(f"unknown header type 0x{htype:02x}")
        ptr_reg = 0
    if ptr_reg and _u16(hdr, R.PCI_STATUS) & R.PCI_STATUS_CAP_LIST:
        _walk_standard(fetch, hdr[ptr_reg] & R.PCI_CAP_PTR_MASK, htype, doc, st)
    if doc["pcie"] is not None:
        _walk_extended(fetch, doc, st)
    doc["truncated"] = st.truncated
    doc["errors"] = _capped(st.errors)
    return doc


def _capped(errors: list[str]) -> list[str]:
    """At most MAX_ERRORS listed and the rest counted, exactly as the C extension does; each
    line cut as C's ``vsnprintf`` into ERROR_LEN bytes would (every message is ASCII)."""
    out = [e[: ERROR_LEN - 1] for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        out.append(f"{len(errors) - MAX_ERRORS} more errors not listed")
    return out


def _walk_standard(fetch: Fetch, pos: int, htype: int, doc: Doc, st: _Walk) -> None:
    seen: set[int] = set()
    caps: list[Doc] = doc["capabilities"]
    ssvid_done = False
    while pos:
        if pos < R.PCI_STD_HEADER_SIZEOF:
            st.errors.append(f"capability pointer 0x{pos:02x} points into the header")
            return
        if pos in seen:
            st.errors.append(f"capability chain loops back to 0x{pos:02x}")
            return
        if len(caps) >= R.PCI_CAP_MAX_ENTRIES:  # unreachable while `seen` holds, kept as a bound
            st.errors.append("capability chain longer than 48 entries")
            return
        seen.add(pos)
        b = st.read(fetch, pos, R.PCI_CAP_HEADER_SIZE)
        if b is None:
            return
        cap_id = b[R.PCI_CAP_LIST_ID]
        if cap_id == 0xFF:
            st.errors.append(f"capability at 0x{pos:02x} has id 0xff: chain broken")
            return
        caps.append({"id": cap_id, "offset": pos, "name": CAP_NAMES.get(cap_id, "unknown")})
        if cap_id == R.PCI_CAP_ID_EXP and doc["pcie"] is None:
            doc["pcie"] = _decode_pcie(fetch, pos, _u16(b, R.PCI_CAP_FLAGS), st)
        elif cap_id == R.PCI_CAP_ID_SSVID and htype == R.PCI_HEADER_TYPE_BRIDGE and not ssvid_done:
            ssvid_done = True
            ids = _decode_ssvid(fetch, pos, st)
            if ids is not None:
                doc["subsystem_vendor_id"], doc["subsystem_id"] = ids
        pos = b[R.PCI_CAP_LIST_NEXT] & R.PCI_CAP_PTR_MASK


def _walk_extended(fetch: Fetch, doc: Doc, st: _Walk) -> None:
    pos = R.PCI_CFG_SPACE_SIZE
    seen: set[int] = set()
    caps: list[Doc] = doc["extended_capabilities"]
    while True:
        if len(caps) >= R.PCI_EXT_CAP_MAX_ENTRIES:  # unreachable while `seen` holds
            st.errors.append("extended capability chain longer than 960 entries")
            return
        seen.add(pos)
        b = st.read(fetch, pos, 4)
        if b is None:
            return
        header = _u32(b, 0)
        if header in (0, 0xFFFFFFFF):
            return
        cap_id = header & R.PCI_EXT_CAP_ID_MASK
        caps.append(
            {
                "id": cap_id,
                "offset": pos,
                "version": (header >> R.PCI_EXT_CAP_VER_SHIFT) & R.PCI_EXT_CAP_VER_MASK,
                "name": EXT_CAP_NAMES.get(cap_id, "unknown"),
            }
        )
        if cap_id == R.PCI_EXT_CAP_ID_SRIOV and doc["sriov"] is None:
            doc["sriov"] = _decode_sriov(fetch, pos, st)
        elif cap_id == R.PCI_EXT_CAP_ID_ARI and doc["ari"] is None:
            doc["ari"] = _decode_ari(fetch, pos, st)
        elif cap_id == R.PCI_EXT_CAP_ID_ACS and doc["acs"] is None:
            doc["acs"] = _decode_acs(fetch, pos, st)
        nxt = (header >> R.PCI_EXT_CAP_NEXT_SHIFT) & R.PCI_EXT_CAP_NEXT_MASK
        if nxt == 0:
            return
        if nxt < R.PCI_CFG_SPACE_SIZE:
            st.errors.append(
                f"extended capability at 0x{pos:03x} points to 0x{nxt:03x}, below 0x100"
            )
            return
        if nxt in seen:
            st.errors.append(f"extended capability chain loops back to 0x{nxt:03x}")
            return
        pos = nxt


# --- public API ------------------------------------------------------------------------


def parse(data: bytes) -> Doc:
    """Decode config bytes (64, 256 or 4096 of them; a shorter space sets ``truncated``)."""
    if len(data) < R.PCI_STD_HEADER_SIZEOF:
        raise ValueError(f"config space is {len(data)} bytes; the header alone needs 64")
    view = bytes(data)

    def fetch(off: int, n: int) -> bytes | None:
        return view[off : off + n] if off + n <= len(view) else None

    return _walk(fetch, view[: R.PCI_STD_HEADER_SIZEOF])


def _parse_file(path: str) -> Doc:
    try:  # O_NONBLOCK: a FIFO in place of a config file must not block the run
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        return {"path": path, "error": f"cannot open: {os.strerror(e.errno or errno.EIO)}"}
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:  # sysfs config attributes are regular files
        os.close(fd)
        return {"path": path, "error": "cannot open: not a regular file"}
    counters = [0, 0]  # bytes read, pread calls
    failed: list[int] = []

    def fetch(off: int, n: int) -> bytes | None:
        counters[1] += 1
        try:
            b = os.pread(fd, n, off)
        except OSError as e:
            failed.append(e.errno or errno.EIO)
            return None
        counters[0] += len(b)
        return b if len(b) == n else None

    try:
        hdr = fetch(0, R.PCI_STD_HEADER_SIZEOF)
        if hdr is None:
            if failed:
                return {"path": path, "error": f"cannot read: {os.strerror(failed[0])}"}
            return {"path": path, "error": f"short read: {counters[0]} bytes, need 64"}
        doc = _walk(fetch, hdr)
    finally:
        os.close(fd)
    doc["path"] = path
    doc["bytes_read"] = counters[0]
    doc["reads"] = counters[1]
    return doc


def parse_files_python(paths: Sequence[str]) -> list[Doc]:
    """The fallback batch reader; also the oracle the C extension is tested against."""
    return [_parse_file(p) for p in paths]


def parse_files_c(paths: Sequence[str]) -> list[Doc]:
    if _C_PARSE_FILES is None:
        raise RuntimeError("the vfctl.pci._configspace extension is not built")
    return _C_PARSE_FILES(list(paths))


def parse_files(paths: Sequence[str]) -> list[Doc]:
    """Parse many sysfs ``config`` files with the fewest bytes read (C when available)."""
    return parse_files_c(paths) if HAVE_C else parse_files_python(paths)


# --- dump loading ----------------------------------------------------------------------

_HEX_LINE = re.compile(r"^([0-9a-fA-F]{2,3}):((?: [0-9a-fA-F]{2}){1,16})\s*$")


def _load_hex(text: str) -> bytes:
    out = bytearray()
    started = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        m = _HEX_LINE.match(line)
        if m is None:
            if not line.strip():
                continue
            if started:
                what = "a second device" if not line[:1].isspace() else "an unexpected line"
                raise ValueError(f"hex dump line {lineno}: {what}: {line.strip()[:40]!r}")
            continue  # the device line(s) lspci prints before the bytes
        if not started and out == b"" and int(m.group(1), 16) != 0:
            raise ValueError(f"hex dump line {lineno}: starts at offset {m.group(1)}, not 00")
        started = True
        if int(m.group(1), 16) != len(out):
            raise ValueError(
                f"hex dump line {lineno}: offset {m.group(1)} where 0x{len(out):x} was expected"
            )
        row = bytes.fromhex(m.group(2))
        if len(row) != 16:
            raise ValueError(f"hex dump line {lineno}: {len(row)} bytes, expected 16")
        out += row
    if not started:
        raise ValueError("not an lspci hex dump: no 'OFFSET: xx xx ...' lines")
    if len(out) not in CONFIG_SIZES:
        raise ValueError(f"hex dump holds {len(out)} bytes; expected 64, 256 or 4096 (truncated?)")
    return bytes(out)


def _looks_like_hex(data: bytes) -> str | None:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if any(_HEX_LINE.match(line.rstrip()) for line in text.splitlines()[:3]):
        return text
    return None


def load_dump(data: bytes) -> bytes:
    """Config bytes from raw bytes or ``lspci -x/-xxx/-xxxx`` text; ValueError otherwise."""
    text = _looks_like_hex(data)
    if text is not None:
        return _load_hex(text)
    if len(data) in CONFIG_SIZES:
        return bytes(data)
    raise ValueError(
        f"{len(data)} bytes is neither raw config space (64, 256 or 4096 bytes) "
        "nor an lspci -x/-xxx/-xxxx hex dump"
    )
