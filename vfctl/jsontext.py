"""The JSON text of `list --json` and `show --json` straight from the model, cheaply.

``json.dumps(pf.to_json())`` first builds a dict per VF and then encodes it: about 130 ms for
16,384 VFs, as much as all of discovery's syscalls. Most of a VF's document is the same for
every VF, so one call writes every row from the VF objects and their settings' attributes
(vfctl/jsonrows.py, in C when built: no dict per VF, no Python call per VF), and the part
that says who uses a VF (attachments, holders, pools) goes through ``to_json`` only for VFs
that have any. The text equals
``json.dumps``'s byte for byte (default separators, ASCII); the first VF of a kind is checked
against ``json.dumps`` (a model change that made them differ: ``json.dumps`` itself), and
tests/host/test_jsontext.py compares whole documents on simulated hosts, with both twins.
"""

from __future__ import annotations

from operator import attrgetter

from vfctl import jsonrows, record
from vfctl.jsoncodec import dumps
from vfctl.model import PF, VF, VfRows, VFSettings, vf_rows

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

_SPLICE = '"vfs": []'
_ATTACHED, _HELD, _POOL = attrgetter("attached_to"), attrgetter("held_by"), attrgetter("pool")
_KEYS = ("index", "address", "driver", "driver_override", "netdev", "iommu_group", "vendor_id",
         "device_id")  # fmt: skip
_SETTINGS = VFSettings.__match_args__  # VFSettings.to_json's keys, in order
# a VF's document: its own fields, its settings' fields, then who uses it (that part raw);
# settings shared by every VF (no netlink settings yet) are one raw fragment, encoded once
_PIECES = (
    *(f'{", " if n else "{"}"{k}": ' for n, k in enumerate(_KEYS + _SETTINGS)),
    ", ",
    "}",
)
_COLUMNS = (*_KEYS, *(("settings", k) for k in _SETTINGS))
_RAW = 1 << len(_COLUMNS)
_PIECES_SHARED = (*_PIECES[: len(_KEYS)], ", ", ", ", "}")
_RAW_SHARED = 0b11 << len(_KEYS)
_TAIL_KEYS = ("attached_to", "held_by", "pool", "pool_vms")
_PLAIN_TAIL = '"attached_to": [], "held_by": null, "pool": null, "pool_vms": []'


def _tail(v: VF) -> str:
    """The used-by part of a VF's JSON (attachments, holder, pool), without braces."""
    if not (v.attached_to or v.held_by or v.pool):
        return _PLAIN_TAIL
    d = v.to_json()
    return dumps({k: d[k] for k in _TAIL_KEYS})[1:-1]


_CHECKED: dict[tuple[object, object], bool] = {}  # (VF.to_json, settings' to_json) -> exact


def _exact(v: VF) -> bool:
    """The pieces still say what ``to_json`` says (a field added or renamed: no).

    A matter of the classes, not the values (a value rows() cannot spell falls back to
    json.dumps anyway): checked once per pair of ``to_json`` methods."""
    if not isinstance(v.settings, VFSettings):
        return False
    key = (type(v).to_json, type(v.settings).to_json)
    if key not in _CHECKED:
        plain = record.replace(v, attached_to=(), held_by=None, pool=None)
        # two VFs with settings objects of their own: the path that reads each one's fields
        two = [plain, record.replace(plain, settings=record.replace(v.settings))]
        _CHECKED[key] = _vfs_text([plain]) == dumps(plain.to_json()) and _vfs_text(
            two
        ) == ", ".join([dumps(x.to_json()) for x in two])
    return _CHECKED[key]


def _vfs_text(vfs: Sequence[VF]) -> str:
    """``", ".join(json.dumps(v.to_json()) for v in vfs)``, a column at a time."""
    # attached, held or pooled (to_json's own tests: truth values): that part through to_json
    used = any(map(_ATTACHED, vfs)) or any(map(_HELD, vfs)) or any(map(_POOL, vfs))
    tails = list(map(_tail, vfs)) if used else [_PLAIN_TAIL] * len(vfs)
    objs = list(map(attrgetter("settings"), vfs))
    try:
        if objs and len(set(map(id, objs))) == 1:  # one shared object: encoded once
            shared = [dumps(objs[0].to_json())[1:-1]] * len(objs)
            return jsonrows.rows(_PIECES_SHARED, (*_KEYS, shared, tails), _RAW_SHARED, vfs)
        # each VF its own (netlink filled them in): their fields read row by row, no dict
        return jsonrows.rows(_PIECES, (*_COLUMNS, tails), _RAW, vfs)
    except (TypeError, ValueError, AttributeError):  # a value json.dumps spells its own way
        # (a float …) or settings of another kind: each VF through json.dumps
        return ", ".join([dumps(v.to_json()) for v in vfs])


_ROWS_CHECKED: dict[tuple[object, ...], bool] = {}  # a shape of VfRows -> its text is exact
_SPELT: dict[tuple[type, object], str] = {}  # a value every VF of a PF shares -> json.dumps's


def _spelt(v: object) -> str:
    key = (type(v), v)
    text = _SPELT.get(key)
    if text is None:
        text = _SPELT[key] = dumps(v.to_json())[1:-1] if type(v) is VFSettings else dumps(v)
    return text


def _rows_text(rows: VfRows) -> str | None:
    """The rows of VFs not made yet (model.VfRows), from the columns themselves; the values
    all VFs share are spelled once, into the pieces. None: not this way (make the VFs)."""
    vals = dict(zip(VF.PLAIN, rows.columns, strict=True))
    settings = vals.pop("settings")
    # one shared object, as discovery makes, or one each (netlink's: discover.with_vf_info)
    each = type(settings) is list
    if not (type(settings) is VFSettings or (each and set(map(type, settings)) == {VFSettings})):
        return None
    pieces, cols, cur = [], [], ""
    try:
        for n, k in enumerate(_KEYS):
            cur += _PIECES[n]
            if type(vals[k]) is list:
                pieces.append(cur)
                cols.append(vals[k])
                cur = ""
            else:
                cur += _spelt(vals[k])
        if each:  # each VF's settings' fields, read row by row (no dict per VF)
            for n, k in enumerate(_SETTINGS, len(_KEYS)):
                pieces.append(cur + _PIECES[n])
                cols.append(k)
                cur = ""
            pieces.append(f", {_PLAIN_TAIL}}}")
        else:
            pieces.append(f"{cur}, {_spelt(settings)}, {_PLAIN_TAIL}}}")
        objs = settings if each else None
        shape = (VF.to_json, VFSettings.to_json, *map(type, rows.columns), len(pieces))
        if shape not in _ROWS_CHECKED:  # the first PF of a shape: its first row as json.dumps
            first = rows.make(1)[0]
            head = tuple(c if type(c) is str else c[:1] for c in cols)
            _ROWS_CHECKED[shape] = _exact(first) and jsonrows.rows(
                tuple(pieces), head, 0, objs[:1] if objs else None
            ) == dumps(first.to_json())
        if not _ROWS_CHECKED[shape]:
            return None
        return jsonrows.rows(tuple(pieces), tuple(cols), 0, objs)
    except (TypeError, ValueError, AttributeError):  # a value json.dumps spells its own way
        return None


def pf_chunks(pf: PF) -> Iterator[str]:
    """``json.dumps(pf.to_json())`` in pieces, the VFs' rows one of them.

    Written as made and never joined: one 7 MB string for 16,384 VFs costs ~12 ms of page
    faults per copy on a fresh allocation (benchmarks/README.md, fourth round), while pieces
    of one PF reuse the same freed memory. VFs still columns (model.VfRows) are written from
    them, without VF objects."""
    rows = vf_rows(pf)
    text = _rows_text(rows) if rows is not None else None
    if text is None and pf.vfs and not _exact(pf.vfs[0]):
        yield dumps(pf.to_json())
        return
    head = dumps(pf.head_json())
    before, sep, after = head.partition(_SPLICE)
    if not sep or _SPLICE in after:  # the key moved or a value spells it: do it the slow way
        yield dumps(pf.to_json())
        return
    yield before + '"vfs": ['
    yield text if text is not None else _vfs_text(pf.vfs)
    yield "]" + after


def list_chunks(pfs: Sequence[PF]) -> Iterator[str]:
    """``json.dumps({"pfs": [pf.to_json() for pf in pfs]})`` in pieces (see ``pf_chunks``)."""
    yield '{"pfs": ['
    for n, p in enumerate(pfs):
        if n:
            yield ", "
        yield from pf_chunks(p)
    yield "]}"
