"""Vendor/device names from the system's pci.ids: the `name` that tables and JSON both show.

Ids stay the contract (DESIGN §3); the name is a courtesy that is null where pci.ids is absent.
"""

from __future__ import annotations

import functools
import re
from itertools import repeat

from vfctl import record

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)

if TYPE_CHECKING:
    from vfctl.model import HostModel

_BLOCK_END = re.compile(rb"\n[^\t#]")  # a line that is neither a device nor a comment
PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
MAX_IDS = 16 << 20


def _line(text: bytes, key: bytes) -> int:
    """Where the first line starting with ``key`` starts, or -1."""
    if text.startswith(key):
        return 0
    at = text.find(b"\n" + key)
    return at + 1 if at >= 0 else -1


@functools.lru_cache(maxsize=4)
def _read(path: str) -> bytes | None:
    """The file, once per process."""
    from vfctl.host.files import read_attr

    try:  # regular files only, never blocking on a FIFO, bounded (pci.ids is ~1.4 MB today)
        return read_attr(path, MAX_IDS)
    except OSError:
        return None


def _line_blind(text: bytes, key: bytes) -> int:
    """``_line(text.lower(), key)`` without lowering the whole text (1.4 MB: ~8M instructions,
    a fifth of a typical host's listing after start-up): the first line starting with any
    spelling of ``key`` in either case, as ``bytes.lower`` folds them (ASCII letters only)."""
    if key != key.lower():
        return -1  # an upper-case letter never starts a lowered line
    spellings = [b""]
    for c in key:
        ch = bytes((c,))
        spellings = [s + x for s in spellings for x in {ch, ch.upper()}]
        if len(spellings) > 64:  # not an id (at most 16 spellings): lower it all
            return _line(text.lower(), key)
    return min((at for at in map(_line, repeat(text), spellings) if at >= 0), default=-1)


@functools.lru_cache(maxsize=256)
def name(vendor: str, device: str) -> str | None:
    """Device name from pci.ids: the vendor's block found by a search, not line by line.

    The rules of a line-by-line reading: comment lines are skipped; the first line that
    starts with the vendor id opens its block, any other line not starting with a tab
    closes it; a device line is one tab, the 4-digit id, the name; ids compare case-blind.
    """
    if any(c in vendor + device for c in "#\t\r\n") or not vendor or not device:
        return None
    for path in PATHS:
        data = _read(path)
        if data is None:
            continue
        at = _line_blind(data, vendor.encode())
        start = data.find(b"\n", at) + 1 if at >= 0 else 0
        if start == 0:
            return None
        end = _BLOCK_END.search(data, start - 1)  # tabs and '#' are the same in either case
        block = data[start : end.start() + 1 if end else len(data)].lower()  # same offsets
        d = _line(block, b"\t" + device.encode())
        if d < 0:
            return None
        stop = block.find(b"\n", d)
        text = data[start + d + 5 : start + stop if stop >= 0 else len(data)]
        return text.decode("utf-8", "replace").strip()
    return None


def named(model: HostModel) -> HostModel:
    """The model with each PF's ``name`` filled from pci.ids, so text and JSON agree."""
    pfs = tuple(
        p if p.name else record.replace(p, name=name(p.vendor_id, p.device_id)) for p in model.pfs
    )
    return record.replace(model, pfs=pfs)
