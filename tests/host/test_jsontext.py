"""list/show JSON written by vfctl.jsontext: the bytes json.dumps gives for the same model."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Callable

import pytest
from simcli import SimHost

from vfctl import jsonrows, jsontext, pciids, render
from vfctl.discover import discover, with_vf_info
from vfctl.host import netlink
from vfctl.host.open import open_host
from vfctl.model import PF, VF, Attachment, HeldBy, HostModel, PoolRef, VFSettings, vf_rows

NewHost = Callable[..., SimHost]


@pytest.fixture(params=["c", "python"])
def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with the C rows (when built) and with the Python twin."""
    if request.param == "c" and not jsonrows.HAVE_C:
        pytest.skip("the vfctl._jsonrows extension is not built (tests/core/test_jsonrows.py)")
    monkeypatch.setattr(jsonrows, "HAVE_C", request.param == "c")
    return str(request.param)


def _model(root: object) -> HostModel:
    h = open_host(str(root))
    m = discover(h)
    info = netlink.vf_info_all(h, [p.netdev for p in m.pfs if p.netdev and p.num_vfs])
    return pciids.named(with_vf_info(m, info))


def _busy(h: SimHost) -> None:
    for pf in h("list", "--json").json()["pfs"]:
        name = pf["address"]
        assert h("enable", name, str(min(pf["total_vfs"], 6))).code == 0
        assert h("bind", name, "vf0-1").code == 0
        if pf["netdev"]:
            assert h("set", name, "vf2", "--vlan", "7", "--trust", "on").code == 0


def _same(m: HostModel) -> None:
    assert "".join(jsontext.list_chunks(m.pfs)) == json.dumps(m.to_json())
    for p in m.pfs:
        assert "".join(jsontext.pf_chunks(p)) == json.dumps(p.to_json())


@pytest.mark.parametrize("preset", ["default", "minimal", "lab"])
def test_simulated_hosts_give_json_dumps_bytes(new_host: NewHost, preset: str, twin: str) -> None:
    h = new_host(f"jsontext-{preset}", preset, _busy)
    m = _model(h.root)
    assert sum(len(p.vfs) for p in m.pfs) > 0
    assert any(v.settings.vlan == 7 for p in m.pfs for v in p.vfs)  # netlink settings in
    _same(m)
    # the CLI writes that text
    out = h("list", "--json").out
    assert out == json.dumps(m.to_json()) + "\n"
    pf = m.pfs[0]
    assert h("show", pf.address, "--json").out == json.dumps(pf.to_json()) + "\n"


def _odd(v: VF, i: int) -> VF:
    """Every kind of value a VF can carry, on every third VF."""
    if i % 3 == 0:
        return v
    if i % 3 == 1:
        return dataclasses.replace(
            v,
            driver='vfio"pci\n\u00e9\x01\x7f\U0001f600',
            driver_override="[bold]x\\y\t%s",
            netdev="\udcffbad",
            iommu_group=None,
            settings=VFSettings(mac="02:00:00:00:00:01", vlan=0, spoofchk=False, trust=True),
        )
    return dataclasses.replace(
        v,
        attached_to=(Attachment("proxmox", "vm101", "101", "hostpci0", live=True),),
        held_by=HeldBy("vm101", 42, "proxmox"),
        pool=PoolRef("pool1", ("vm101", "vm102")),
    )


def test_odd_values_give_json_dumps_bytes(new_host: NewHost, twin: str) -> None:
    h = new_host("jsontext-default", "default", _busy)
    m = _model(h.root)
    pfs = []
    for p in m.pfs:
        vfs = tuple(_odd(v, i) for i, v in enumerate(p.vfs))
        pfs.append(dataclasses.replace(p, vfs=vfs, notes=('"vfs": []',), name="x\u2028y"))
    pfs.append(dataclasses.replace(m.pfs[0], vfs=()))
    # one use at a time: held only, pooled only, attached only (each its own tail)
    v0 = m.pfs[0].vfs[0]
    one = (
        dataclasses.replace(v0, held_by=HeldBy(None, 7)),
        dataclasses.replace(v0, pool=PoolRef("p\\q")),
        dataclasses.replace(v0, attached_to=(Attachment("libvirt", "d\n", "u", "hostdev"),)),
        v0,
    )
    pfs += [dataclasses.replace(m.pfs[0], vfs=(v,)) for v in one]
    pfs.append(dataclasses.replace(m.pfs[0], vfs=one))
    # a value rows() leaves to json.dumps (a float): that PF's VFs through json.dumps
    v0 = m.pfs[0].vfs[0]
    pfs.append(dataclasses.replace(m.pfs[0], vfs=(v0, dataclasses.replace(v0, iommu_group=2.5))))
    _same(HostModel(tuple(pfs)))


def test_a_model_change_falls_back_to_json_dumps(
    monkeypatch: pytest.MonkeyPatch, twin: str
) -> None:
    """A field the format string does not know: the text still equals json.dumps's."""
    vf = VF(0, "0000:01:10.0", None, None, None, 3, "8086", "10ca")
    pf = PF("0000:01:00.0", "eth0", ("eth0",), "igb", "8086", "10c9", "020000", None, 7, 7, 7,
            1, 128, 2, "10ca", True, 0, 1, None, False, vfs=(vf,))  # fmt: skip
    orig = VF.to_json

    def extra(self: VF) -> dict[str, object]:
        return {**orig(self), "new_field": 1}

    monkeypatch.setattr(VF, "to_json", extra)
    assert "".join(jsontext.pf_chunks(pf)) == json.dumps(pf.to_json())
    assert '"new_field": 1' in "".join(jsontext.pf_chunks(pf))


class _Out(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True])
def test_chunks_are_written_as_one_document(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    """Pieces written as they come: a pipe gets their text, a terminal the indented document."""
    vf = VF(0, "0000:01:10.0", "iavf", None, None, 3, "8086", "10ca")
    pf = PF("0000:01:00.0", "eth0", ("eth0",), "igb", "8086", "10c9", "020000", 'a "b"\n', 7, 7,
            7, 1, 128, 2, "10ca", True, 0, 1, None, False, vfs=(vf, vf))  # fmt: skip
    out = _Out(tty)
    monkeypatch.setattr(sys, "stdout", out)
    doc = {"pfs": [pf.to_json(), pf.to_json()]}
    render.emit_json_chunks(jsontext.list_chunks((pf, pf)))
    assert out.getvalue() == (json.dumps(doc, indent=2) if tty else json.dumps(doc)) + "\n"
    assert len(list(jsontext.list_chunks((pf, pf)))) > 3  # pieces, not one string


def test_netlink_settings_keep_vfs_unmade_and_give_json_dumps_bytes(
    new_host: NewHost, twin: str
) -> None:
    """A real PF driver reports every VF's settings (IFLA_VFINFO_LIST). Discovery keeps the
    VFs as columns with a settings column; the text written from the columns is json.dumps'
    of the VFs made from them, and those VFs equal the ones a replace per VF made."""
    h = new_host("jsontext-netlink", "default", _busy)
    root = open_host(str(h.root))
    plain = discover(root)
    info = netlink.vf_info_all(root, [p.netdev for p in plain.pfs if p.netdev and p.num_vfs])
    m = pciids.named(with_vf_info(plain, info))
    lazy = [p for p in m.pfs if vf_rows(p) is not None]
    assert lazy and all(type(vf_rows(p).columns[-1]) is list for p in lazy if p.netdev)  # type: ignore[union-attr]
    texts = ["".join(jsontext.pf_chunks(p)) for p in m.pfs]
    assert [p for p in m.pfs if vf_rows(p) is not None] == lazy  # written without making VFs
    assert texts == [json.dumps(p.to_json()) for p in m.pfs]
    assert any(v.settings.vlan == 7 for p in m.pfs for v in p.vfs)
    made = discover(root)
    assert [p.vfs for p in made.pfs] and not any(map(vf_rows, made.pfs))  # made: a replace per VF
    assert [p.vfs for p in with_vf_info(made, info).pfs] == [p.vfs for p in m.pfs]
