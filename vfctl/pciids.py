"""Vendor/device names from the system's pci.ids: the `name` that tables and JSON both show.

Ids stay the contract (DESIGN §3); the name is a courtesy that is null where pci.ids is absent.
"""

from __future__ import annotations

from vfctl import record

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)

if TYPE_CHECKING:
    from vfctl.model import HostModel

PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
MAX_IDS = 16 << 20
MAX_VARIANTS = 4  # case spellings of an id searched for before lowering the whole file

_files: dict[str, bytes | None] = {}
_names: dict[tuple[str, str], str | None] = {}


def cache_clear() -> None:
    """Forget the files read and the names found (tests swap PATHS)."""
    _files.clear()
    _names.clear()


def _line(text: bytes, key: bytes, start: int = 0) -> int:
    """Where the first line at or after ``start`` starting with ``key`` starts, or -1."""
    if text.startswith(key, start):
        return start
    at = text.find(b"\n" + key, start)
    return at + 1 if at >= 0 else -1


def _read(path: str) -> bytes | None:
    """The file, once per process."""
    if path not in _files:
        from vfctl.host.files import read_attr

        try:  # regular files only, never blocking on a FIFO, bounded (pci.ids is ~1.4 MB today)
            _files[path] = read_attr(path, MAX_IDS)
        except OSError:
            _files[path] = None
    return _files[path]


def _variants(key: bytes) -> list[bytes]:
    """Every spelling of a lower-case key that lowers to it (ids compare case-blind)."""
    out = [b""]
    for c in key:
        ch = bytes((c,))
        out = [v + x for v in out for x in ((ch, ch.upper()) if 97 <= c <= 122 else (ch,))]
    return out


def _first(data: bytes, spellings: list[bytes], start: int) -> int:
    """Where the first of ``spellings`` occurs at or after ``start``, or -1.

    The first spelling (lower case: pci.ids is written so) is searched for through the file;
    the others only before what it found."""
    best = -1
    for s in spellings:
        at = data.find(s, start, best + len(s) - 1 if best >= 0 else len(data))
        if at >= 0:
            best = at
    return best


def _line_blind(data: bytes, key: bytes, start: int = 0) -> int:
    """``_line(data.lower(), key, start)`` without lowering the file: a search per case
    spelling of the key (lowering the 1.4 MB file cost ~1 ms, a tenth of Python's own
    start-up; benchmarks/README.md, sixth round). ``start``: 0 or a line's start."""
    if key != key.lower():
        return -1  # a lower-cased line never starts with an upper-case letter
    spellings = _variants(key)
    if len(spellings) > MAX_VARIANTS:
        return _line(data.lower(), key, start)
    if any(data.startswith(s, start) for s in spellings):
        return start
    at = _first(data, [b"\n" + s for s in spellings], start)
    return at + 1 if at >= 0 else -1


def _in_block(data: bytes, start: int, at: int) -> bool:
    """Whether no line between ``start`` and ``at`` closes a block: every newline there is
    followed by a tab (a device or subsystem line) or a ``#`` (a comment).

    Three counts in C instead of a walk over the vendor's lines (Intel's block has ~8,500)."""
    return data.count(b"\n", start, at) == data.count(b"\n\t", start, at) + data.count(
        b"\n#", start, at
    )


def name(vendor: str, device: str) -> str | None:
    """Device name from pci.ids (looked up once per pair and process)."""
    key = (vendor, device)
    if key not in _names:
        _names[key] = _lookup(vendor, device)
    return _names[key]


def _lookup(vendor: str, device: str) -> str | None:
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
        d = _line_blind(data, b"\t" + device.encode(), start)
        if d < 0 or not _in_block(data, start - 1, d - 1):
            return None  # absent, or only in a later block
        stop = data.find(b"\n", d)
        text = data[d + 5 : stop if stop >= 0 else len(data)]
        return text.decode("utf-8", "replace").strip()
    return None


def named(model: HostModel) -> HostModel:
    """The model with each PF's ``name`` filled from pci.ids, so text and JSON agree."""
    pfs = tuple(
        p if p.name else record.replace(p, name=name(p.vendor_id, p.device_id)) for p in model.pfs
    )
    return record.replace(model, pfs=pfs)
