"""The JSON text of `list --json` and `show --json` straight from the model, cheaply.

``json.dumps(pf.to_json())`` first builds a dict per VF and then encodes it: about 130 ms for
16,384 VFs, as much as all of discovery's syscalls. Most of a VF's document is the same for
every VF (its settings object is shared until netlink fills it in), so this takes the VFs a
column at a time and writes every row in one call (vfctl/jsonrows.py, in C when built), each
distinct settings object encoded once, and the part that says who uses a VF (attachments,
holders, pools) through ``to_json`` only for VFs that have any. The text equals
``json.dumps``'s byte for byte (default separators, ASCII); the first VF of a kind is checked
against ``json.dumps`` (a model change that made them differ: ``json.dumps`` itself), and
tests/host/test_jsontext.py compares whole documents on simulated hosts, with both twins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

from vfctl import jsonrows, record
from vfctl.model import PF, VF, VFSettings

_SPLICE = '"vfs": []'
_UNUSED = ((), None, None)  # (attached_to, held_by, pool) of a VF nobody uses
_KEYS = ("index", "address", "driver", "driver_override", "netdev", "iommu_group", "vendor_id",
         "device_id")  # fmt: skip
_GET = tuple(map(attrgetter, _KEYS))
# a VF's document: its own fields, its settings' fields, then who uses it (the last two raw)
_PIECES = (*(f'{", " if n else "{"}"{k}": ' for n, k in enumerate(_KEYS)), ", ", ", ", "}")
_RAW = 0b11 << len(_KEYS)
_TAIL_KEYS = ("attached_to", "held_by", "pool", "pool_vms")
_PLAIN_TAIL = '"attached_to": [], "held_by": null, "pool": null, "pool_vms": []'


def _tail(v: VF) -> str:
    """The used-by part of a VF's JSON (attachments, holder, pool), without braces."""
    if (v.attached_to, v.held_by, v.pool) == _UNUSED:
        return _PLAIN_TAIL
    d = v.to_json()
    return json.dumps({k: d[k] for k in _TAIL_KEYS})[1:-1]


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
        _CHECKED[key] = _vfs_text([plain]) == json.dumps(plain.to_json())
    return _CHECKED[key]


def _vfs_text(vfs: Sequence[VF]) -> str:
    """``", ".join(json.dumps(v.to_json()) for v in vfs)``, a column at a time."""
    objs = list(map(attrgetter("settings"), vfs))
    if objs and len(set(map(id, objs))) == 1:  # one shared object: no netlink settings yet
        settings = [json.dumps(objs[0].to_json())[1:-1]] * len(objs)
    else:
        frags: dict[int, str] = {}  # by identity: the model holds every object meanwhile
        settings = [
            frags.get(id(s)) or frags.setdefault(id(s), json.dumps(s.to_json())[1:-1]) for s in objs
        ]
    uses = list(map(attrgetter("attached_to", "held_by", "pool"), vfs))
    unused = uses.count(_UNUSED) == len(uses)  # else attached, held or pooled: through to_json
    tails = [_PLAIN_TAIL] * len(uses) if unused else list(map(_tail, vfs))
    cols: tuple[list[Any], ...] = (*(list(map(g, vfs)) for g in _GET), settings, tails)
    try:
        return jsonrows.rows(_PIECES, cols, _RAW)
    except (TypeError, ValueError):  # a value json.dumps spells its own way (a float …)
        return ", ".join([json.dumps(v.to_json()) for v in vfs])


def pf_chunks(pf: PF) -> Iterator[str]:
    """``json.dumps(pf.to_json())`` in pieces, the VFs' rows one of them.

    Written as made and never joined: one 7 MB string for 16,384 VFs costs ~12 ms of page
    faults per copy on a fresh allocation (benchmarks/README.md, fourth round), while pieces
    of one PF reuse the same freed memory."""
    if pf.vfs and not _exact(pf.vfs[0]):
        yield json.dumps(pf.to_json())
        return
    head = json.dumps(pf.head_json())
    before, sep, after = head.partition(_SPLICE)
    if not sep or _SPLICE in after:  # the key moved or a value spells it: do it the slow way
        yield json.dumps(pf.to_json())
        return
    yield before + '"vfs": ['
    yield _vfs_text(pf.vfs)
    yield "]" + after


def pf_text(pf: PF) -> str:
    """``json.dumps(pf.to_json())``, built without a dict per VF."""
    return "".join(pf_chunks(pf))


def list_chunks(pfs: Sequence[PF]) -> Iterator[str]:
    """``json.dumps({"pfs": [pf.to_json() for pf in pfs]})`` in pieces (see ``pf_chunks``)."""
    yield '{"pfs": ['
    for n, p in enumerate(pfs):
        if n:
            yield ", "
        yield from pf_chunks(p)
    yield "]}"


def list_text(pfs: Sequence[PF]) -> str:
    """``json.dumps({"pfs": [pf.to_json() for pf in pfs]})``."""
    return "".join(list_chunks(pfs))
