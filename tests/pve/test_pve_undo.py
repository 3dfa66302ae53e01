"""`vfctl undo` of attach/detach against the fake PVE API (its real schema): the VM configs,
pending changes and cluster mappings come back exactly as they were before the run."""

from __future__ import annotations

from typing import Any

from pvecli import PF, Pve

VF1 = "0000:01:10.2"  # VF 1 of the 82599 in the default preset: offset 128, stride 2


def cluster(p: Pve) -> dict[str, Any]:
    """Everything vfctl can change on the PVE side: every VM's config and pending, mappings."""
    st = p.fake.read()
    return {
        "vms": {k: (v["config"], v["pending"], v["pending_delete"]) for k, v in st["vms"].items()},
        "mappings": st["mappings"],
    }


def host_state(p: Pve) -> dict[str, Any]:
    doc = p("list", "--json").json()
    return {
        pf["address"]: [(v["driver"], v["driver_override"]) for v in pf["vfs"]] for pf in doc["pfs"]
    }


def test_undo_attach_and_detach(pve: Pve) -> None:
    before = (cluster(pve), host_state(pve))
    r = pve("attach", "101", PF, "vf1", "--json")
    assert r.code == 0, r.err
    attached = (cluster(pve), host_state(pve))
    assert attached != before
    u = pve("undo", r.json()["history_id"], "--json")
    assert u.code == 0, u.err
    assert "vm101 hostpci0" in {a["target"] for a in u.json()["actions"]}
    assert (cluster(pve), host_state(pve)) == before

    # detach: undo puts the VF back into the same slot, with the same options
    assert pve("attach", "101", PF, "vf1", "--pcie").code == 0
    with_vf = (cluster(pve), host_state(pve))
    d = pve("detach", "101", PF, "vf1", "--json")
    assert d.code == 0, d.err
    assert pve.hostpci(101) == {}
    assert pve("undo", d.json()["history_id"]).code == 0
    assert (cluster(pve), host_state(pve)) == with_vf
    assert pve.hostpci(101) == {"hostpci0": pve.expected_value(VF1, "vf-enp1s0f0-1")}


def test_undo_refused_when_the_vm_changed_since(token_pve: Pve) -> None:
    r = token_pve("attach", "101", PF, "vf1", "--json")
    assert r.code == 0, r.err
    assert token_pve("detach", "101", PF, "vf1").code == 0
    assert token_pve("attach", "102", PF, "vf1").code == 0  # the VF moved on to another VM
    moved = cluster(token_pve)
    u = token_pve("undo", r.json()["history_id"], "--json")
    assert u.code == 4 and "attached_to" in u.err and "proxmox:vm102" in u.err
    assert cluster(token_pve) == moved
