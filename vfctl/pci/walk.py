"""Walk a PCI config space's capability lists: the pure-Python twin of ``_configspace.c``.

Both run the same walk over a ``fetch(offset, length)`` source and fetch only what a decoder
needs (header, one dword per capability header, then the bodies of SR-IOV, ARI, ACS, PCI
Express and bridge subsystem IDs), so a batch over a sysfs tree reads a few hundred bytes per
function instead of 4 KiB. This side is the test oracle and the fallback when the extension
is not built (or ``VFCTL_NO_C=1``); vfctl.pci.configspace imports it only then, so a listing
with the extension loads none of these decoders.
"""

from __future__ import annotations

import errno
import os
import stat

from vfctl.pci import regs as R
from vfctl.pci.capnames import CAP_NAMES, EXT_CAP_NAMES
from vfctl.pci.caps import (
    Doc,
    Fetch,
    Walk,
    decode_acs,
    decode_ari,
    decode_pcie,
    decode_sriov,
    decode_ssvid,
    hex4,
    u16,
    u32,
)

MAX_ERRORS = 16  # errors listed per document; the rest are counted (C: MAX_ERRORS)
ERROR_LEN = 96  # C: the buffer of one error line, NUL included

# --- the walk --------------------------------------------------------------------------


def _walk(fetch: Fetch, hdr: bytes) -> Doc:
    st = Walk()
    htype = hdr[R.PCI_HEADER_TYPE] & R.PCI_HEADER_TYPE_MASK
    cls = hdr[R.PCI_CLASS_PROG] | hdr[R.PCI_CLASS_PROG + 1] << 8 | hdr[R.PCI_CLASS_PROG + 2] << 16
    doc: Doc = {
        "vendor_id": hex4(u16(hdr, R.PCI_VENDOR_ID)),
        "device_id": hex4(u16(hdr, R.PCI_DEVICE_ID)),
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
        ssv = u16(hdr, R.PCI_SUBSYSTEM_VENDOR_ID)
        if ssv not in (0, 0xFFFF):
            doc["subsystem_vendor_id"] = hex4(ssv)
            doc["subsystem_id"] = hex4(u16(hdr, R.PCI_SUBSYSTEM_ID))
    if htype in (R.PCI_HEADER_TYPE_NORMAL, R.PCI_HEADER_TYPE_BRIDGE):
        ptr_reg = R.PCI_CAPABILITY_LIST
    elif htype == R.PCI_HEADER_TYPE_CARDBUS:
        ptr_reg = R.PCI_CB_CAPABILITY_LIST
    else:
        st.errors.append(f"unknown header type 0x{htype:02x}")
        ptr_reg = 0
    if ptr_reg and u16(hdr, R.PCI_STATUS) & R.PCI_STATUS_CAP_LIST:
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


def _walk_standard(fetch: Fetch, pos: int, htype: int, doc: Doc, st: Walk) -> None:
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
            doc["pcie"] = decode_pcie(fetch, pos, u16(b, R.PCI_CAP_FLAGS), st)
        elif cap_id == R.PCI_CAP_ID_SSVID and htype == R.PCI_HEADER_TYPE_BRIDGE and not ssvid_done:
            ssvid_done = True
            ids = decode_ssvid(fetch, pos, st)
            if ids is not None:
                doc["subsystem_vendor_id"], doc["subsystem_id"] = ids
        pos = b[R.PCI_CAP_LIST_NEXT] & R.PCI_CAP_PTR_MASK


def _walk_extended(fetch: Fetch, doc: Doc, st: Walk) -> None:
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
        header = u32(b, 0)
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
            doc["sriov"] = decode_sriov(fetch, pos, st)
        elif cap_id == R.PCI_EXT_CAP_ID_ARI and doc["ari"] is None:
            doc["ari"] = decode_ari(fetch, pos, st)
        elif cap_id == R.PCI_EXT_CAP_ID_ACS and doc["acs"] is None:
            doc["acs"] = decode_acs(fetch, pos, st)
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


# --- one space, one file --------------------------------------------------------------


def parse(data: bytes) -> Doc:
    """Decode config bytes (64, 256 or 4096 of them; a shorter space sets ``truncated``)."""
    if len(data) < R.PCI_STD_HEADER_SIZEOF:
        raise ValueError(f"config space is {len(data)} bytes; the header alone needs 64")
    view = bytes(data)

    def fetch(off: int, n: int) -> bytes | None:
        return view[off : off + n] if off + n <= len(view) else None

    return _walk(fetch, view[: R.PCI_STD_HEADER_SIZEOF])


def parse_file(path: str) -> Doc:
    """One sysfs ``config`` file, reading only what the decoders need."""
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
