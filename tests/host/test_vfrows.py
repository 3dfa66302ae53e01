"""PFs whose VFs stay columns until read (model.VfRows): the same model, the same JSON bytes.

Discovery hands each PF its VFs as ``VF.plain``'s columns; ``PF.vfs`` makes them on first
read, ``record.replace`` keeps them unmade, and ``jsontext`` writes their rows from the
columns. Each check compares against a PF made with its VFs at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from simcli import SimHost

from vfctl import discover as disc
from vfctl import jsonrows, jsontext, pciids
from vfctl.host.open import open_host
from vfctl.model import PF, VF, HostModel, VfRows, VFSettings, pf_of_rows, vf_rows
from vfctl.record import replace

NewHost = Callable[..., SimHost]

_PF: dict[str, Any] = dict(address="0000:01:00.0", netdev="eth0", netdevs=("eth0",), driver="igb",
           vendor_id="8086", device_id="10c9", class_code="020000", name=None, total_vfs=7,
           cap_total_vfs=7, initial_vfs=7, num_vfs=3, vf_offset=128, vf_stride=2,
           vf_device_id="10ca", autoprobe=True, numa_node=0, iommu_group=1, link=None,
           ari=False, notes=(), problems=())  # fmt: skip
_ODD = 'vfio"pci\n\u00e9\x01\x7f\U0001f600'


def _cols(ids: bool = True, odd: bool = False) -> tuple[object, ...]:
    """Three VFs' columns as discovery makes them (ids: vendor/device shared, else per VF)."""
    drivers = [_ODD if odd else "vfio-pci", None, "igbvf"]
    overrides = ["[bold]x\\y\t%s" if odd else "vfio-pci", None, None]
    groups = [None if odd else 12, 13, 14]
    vids: object = "8086" if ids else ["8086", "????", "8086"]
    dids: object = "10ca" if ids else ["10ca", "????", "\udcff"]
    return ([0, 1, 2], ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"], drivers, overrides,
            ["\udcffbad" if odd else None, None, "eth9"], groups, vids, dids, VFSettings())  # fmt: skip


def _both(cols: tuple[object, ...]) -> tuple[PF, PF]:
    """The PF with its VFs still columns, and the same PF with them made at once."""
    rows = VfRows(cols, 3)
    vfs = tuple(VF.plain(*row) for row in _rows(cols))
    return pf_of_rows(rows, **_PF), PF(vfs=vfs, **_PF)


def _rows(cols: tuple[object, ...]) -> list[tuple[Any, ...]]:
    return [tuple(c[i] if type(c) is list else c for c in cols) for i in range(3)]


@pytest.fixture(params=["c", "python"])
def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "c" and not jsonrows.HAVE_C:
        pytest.skip("the vfctl._jsonrows extension is not built (tests/core/test_jsonrows.py)")
    monkeypatch.setattr(jsonrows, "HAVE_C", request.param == "c")
    monkeypatch.setattr(jsontext, "_ROWS_CHECKED", {})
    return str(request.param)


@pytest.mark.parametrize("ids", [True, False])
def test_vfs_made_when_read_equal_vfs_made_at_once(ids: bool, twin: str) -> None:
    lazy, eager = _both(_cols(ids))
    assert vf_rows(lazy) is not None and "vfs" not in lazy.__dict__
    assert vf_rows(lazy).column("vendor_id") == [v.vendor_id for v in eager.vfs]  # type: ignore[union-attr]
    assert vf_rows(lazy).make(2) == eager.vfs[:2]  # type: ignore[union-attr]
    assert lazy.vfs == eager.vfs and lazy.vfs is lazy.vfs  # made once, then kept
    assert vf_rows(lazy) is None
    assert lazy == eager and hash(lazy) == hash(eager) and repr(lazy) == repr(eager)


def test_replace_keeps_vfs_unmade_and_equal() -> None:
    lazy, eager = _both(_cols())
    named = replace(lazy, name="82576")
    assert vf_rows(named) is not None and vf_rows(lazy) is not None
    assert named == replace(eager, name="82576")
    with pytest.raises(TypeError, match="unexpected keyword argument 'nmae'"):
        replace(lazy, nmae="82576")  # as dataclasses.replace refuses it
    assert vf_rows(lazy) is not None
    emptied = replace(lazy, vfs=())  # a new value for the field itself: that one
    assert vf_rows(emptied) is None and emptied.vfs == ()
    assert pciids.named(HostModel((lazy,))).pfs[0].vfs == eager.vfs


@pytest.mark.parametrize("ids", [True, False])
@pytest.mark.parametrize("odd", [False, True])
def test_json_from_columns_is_json_dumps_bytes(ids: bool, odd: bool, twin: str) -> None:
    lazy, eager = _both(_cols(ids, odd))
    text = "".join(jsontext.pf_chunks(lazy))
    assert text == json.dumps(eager.to_json())
    assert vf_rows(lazy) is not None  # written from the columns: no VF was made
    assert "".join(jsontext.list_chunks([lazy, eager])) == json.dumps(
        HostModel((eager, eager)).to_json()
    )


def test_a_value_rows_leave_alone_or_a_model_change_falls_back(
    monkeypatch: pytest.MonkeyPatch, twin: str
) -> None:
    cols = list(_cols())
    cols[5] = [2.5, 13, 14]  # a float group: json.dumps's own spelling
    lazy, eager = _both(tuple(cols))
    assert "".join(jsontext.pf_chunks(lazy)) == json.dumps(eager.to_json())
    orig = VF.to_json

    def extra(self: VF) -> dict[str, object]:
        return {**orig(self), "new_field": 1}

    monkeypatch.setattr(VF, "to_json", extra)
    monkeypatch.setattr(jsontext, "_CHECKED", {})
    lazy, eager = _both(_cols())
    assert "".join(jsontext.pf_chunks(lazy)) == json.dumps(eager.to_json())
    assert '"new_field": 1' in json.dumps(eager.to_json())


def _enable(h: SimHost) -> None:
    for pf in h("list", "--json").json()["pfs"]:
        assert h("enable", pf["address"], str(min(pf["total_vfs"], 5))).code == 0
    assert h("bind", h("list", "--json").json()["pfs"][0]["address"], "vf0-1").code == 0


def test_discovery_leaves_vfs_as_columns_and_reads_groups_from_them(
    new_host: NewHost, twin: str
) -> None:
    h = new_host("vfrows-default", "default", _enable)
    host = open_host(str(h.root))
    m = disc.discover(host)
    assert m.pfs and all(vf_rows(p) is not None for p in m.pfs if p.num_vfs)
    groups = disc._vf_groups(m.pfs)
    assert disc._any_group(m.pfs)
    assert all(vf_rows(p) is not None for p in m.pfs if p.num_vfs)  # still columns
    text = "".join(jsontext.list_chunks(m.pfs))
    assert groups == {v.address: v.iommu_group for p in m.pfs for v in p.vfs}
    assert text == json.dumps(m.to_json())
    # a VF attached by a backend: its PF's VFs made at discovery, with the attachment
    from vfctl.model import Attachment

    vf = m.pfs[0].vfs[0]
    att = Attachment("libvirt", "dom", "u", "hostdev")
    m2 = disc.discover(host, {vf.address: [att]})
    assert vf_rows(m2.pfs[0]) is None and m2.pfs[0].vfs[0].attached_to == (att,)
    assert m2.pfs[0].vfs[1:] == m.pfs[0].vfs[1:]


def test_a_pickled_pf_with_vfs_unmade_comes_back_equal() -> None:
    import pickle

    lazy, eager = _both(_cols())
    again = pickle.loads(pickle.dumps(lazy))
    assert vf_rows(again) is not None and again == eager and again.vfs == eager.vfs


@pytest.mark.parametrize("odd", [False, True])
def test_netlink_settings_as_a_column_equal_a_replace_per_vf(odd: bool, twin: str) -> None:
    """discover.with_vf_info on VFs not made: each VF's settings by its index (the VF's own
    past the driver's list), the same VFs and the same JSON bytes as a replace per VF."""
    from vfctl.discover import with_vf_info

    lazy, eager = _both(_cols(odd=odd))
    got = [VFSettings(mac="02:00:00:00:00:01", vlan=7, trust=True), VFSettings(spoofchk=False)]
    info = {"eth0": got}  # two settings for three VFs: the third keeps its own
    new = with_vf_info(HostModel((lazy,)), info).pfs[0]
    old = with_vf_info(HostModel((eager,)), info).pfs[0]
    rows = vf_rows(new)
    assert rows is not None and rows.column("settings") == [got[0], got[1], VFSettings()]
    assert "".join(jsontext.pf_chunks(new)) == json.dumps(old.to_json())
    assert vf_rows(new) is not None  # written from the columns
    assert new.vfs == old.vfs and new == old
