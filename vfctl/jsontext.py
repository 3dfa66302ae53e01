"""The JSON text of `list --json` and `show --json` straight from the model, cheaply.

``json.dumps(pf.to_json())`` first builds a dict per VF and then encodes it: about 130 ms for
16,384 VFs, as much as all of discovery's syscalls. Most of a VF's document is the same for
every VF (its settings object is shared until netlink fills it in), so this writes each VF
from one format string, each distinct settings object encoded once, and everything unusual
(attachments, holders, pools) through ``to_json`` as before. The text equals ``json.dumps``'s
byte for byte (default separators, ASCII); each call checks that on its first VF and falls
back to ``json.dumps`` when a model change made them differ, and tests/core/test_jsontext.py
compares whole documents on simulated hosts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _str
from operator import attrgetter

from vfctl import record
from vfctl.model import PF, VF, VFSettings

_SPLICE = '"vfs": []'
_UNUSED = ((), None, None)  # (attached_to, held_by, pool) of a VF nobody uses


def _opt(v: str | None) -> str:
    return "null" if v is None else _str(v)


def _vf_text(v: VF, settings: dict[int, str]) -> str:
    if v.attached_to or v.held_by is not None or v.pool is not None:
        return json.dumps(v.to_json())
    s = v.settings
    frag = settings.get(id(s))
    if frag is None:  # the ids stay valid: the model holds every settings object meanwhile
        frag = settings[id(s)] = json.dumps(s.to_json())[1:-1]
    g = v.iommu_group
    return (
        f'{{"index": {int(v.index)}, "address": {_str(v.address)}, "driver": {_opt(v.driver)}, '
        f'"driver_override": {_opt(v.driver_override)}, "netdev": {_opt(v.netdev)}, '
        f'"iommu_group": {"null" if g is None else int(g)}, "vendor_id": {_str(v.vendor_id)}, '
        f'"device_id": {_str(v.device_id)}, {frag}, "attached_to": [], "held_by": null, '
        '"pool": null, "pool_vms": []}'
    )


def _exact(v: VF) -> bool:
    """The format strings still say what ``to_json`` says (a field added or renamed: no)."""
    if not isinstance(v.settings, VFSettings) or type(v.index) is not int:
        return False
    plain = record.replace(v, attached_to=(), held_by=None, pool=None)
    return _vf_text(plain, {}) == json.dumps(plain.to_json()) == _vfs_text([plain])


class _Memo(dict[object, str]):
    """value -> its JSON text, each distinct value encoded once (drivers, ids: a handful)."""

    def __missing__(self, v: object) -> str:
        self[v] = text = json.dumps(v)
        return text


_VF = (
    '{"index": %d, "address": %s, "driver": %s, "driver_override": %s, "netdev": %s, '
    '"iommu_group": %s, "vendor_id": %s, "device_id": %s, %s, "attached_to": [], '
    '"held_by": null, "pool": null, "pool_vms": []}'
)  # _vf_text's format, filled a column at a time (C-level maps, no Python call per VF)


def _vfs_text(vfs: Sequence[VF]) -> str:
    """The VFs' documents joined, each equal to ``_vf_text``'s."""
    memo = _Memo()
    get = memo.__getitem__
    objs = list(map(attrgetter("settings"), vfs))
    if objs and len(set(map(id, objs))) == 1:  # one shared object: no netlink settings yet
        settings = [json.dumps(objs[0].to_json())[1:-1]] * len(objs)
    else:
        frags: dict[int, str] = {}  # by identity: the model holds every object meanwhile
        settings = [
            frags.get(id(s)) or frags.setdefault(id(s), json.dumps(s.to_json())[1:-1]) for s in objs
        ]
    groups = ["null" if g is None else g for g in map(attrgetter("iommu_group"), vfs)]
    cols = zip(
        map(attrgetter("index"), vfs),
        map(_str, map(attrgetter("address"), vfs)),
        map(get, map(attrgetter("driver"), vfs)),
        map(get, map(attrgetter("driver_override"), vfs)),
        map(get, map(attrgetter("netdev"), vfs)),
        groups,
        map(get, map(attrgetter("vendor_id"), vfs)),
        map(get, map(attrgetter("device_id"), vfs)),
        settings,
        strict=True,
    )
    texts = list(map(_VF.__mod__, cols))
    uses = list(map(attrgetter("attached_to", "held_by", "pool"), vfs))
    if uses.count(_UNUSED) != len(uses):  # attached, held or pooled: through to_json
        for n, v in enumerate(vfs):
            if uses[n] != _UNUSED:
                texts[n] = json.dumps(v.to_json())
    return ", ".join(texts)


def pf_text(pf: PF) -> str:
    """``json.dumps(pf.to_json())``, built without a dict per VF."""
    if pf.vfs and not _exact(pf.vfs[0]):
        return json.dumps(pf.to_json())
    head = json.dumps(record.replace(pf, vfs=()).to_json())
    before, sep, after = head.partition(_SPLICE)
    if not sep or _SPLICE in after:  # the key moved or a value spells it: do it the slow way
        return json.dumps(pf.to_json())
    return f'{before}"vfs": [{_vfs_text(pf.vfs)}]{after}'


def list_text(pfs: Sequence[PF]) -> str:
    """``json.dumps({"pfs": [pf.to_json() for pf in pfs]})``."""
    return '{"pfs": [' + ", ".join([pf_text(p) for p in pfs]) + "]}"
