"""Issue 12 §2-§4 through the real CLI: pools (multi-entry mappings), reservations, held_by.

The fake PVE starts VMs the way qemu-server does (``fakepve_start``: the first free entry of
a pool, reservations in ``/run/qemu-server/pci-id-reservations``), and a started VM is a QEMU
stand-in on the simulated host holding its groups' ``/dev/vfio/N`` open.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from fakepve import FakePve
from pvecli import PF, Pve

from vfctl.sim import vm as sim_vm

VFS = [f"0000:01:10.{f}" for f in (0, 2, 4, 6)]  # VF 0-3 of enp1s0f0 in the default preset
ENTRY = "node=pve1,path={},id=8086:10ed"
POOL = {
    "description": "SR-IOV pool made in the GUI",
    "map": [
        *(ENTRY.format(a) for a in VFS[:3]),
        "node=pve2,path=0000:81:10.0,id=8086:10ed",
    ],
}


def _vfs(pve: Pve) -> dict[str, dict[str, Any]]:
    r = pve("list", "--json")
    assert r.code == 0, r.err
    return {v["address"]: v for p in r.json()["pfs"] for v in p["vfs"]}


def _group(root: Path, addr: str) -> int:
    return int(os.path.basename(os.readlink(root / f"sys/bus/pci/devices/{addr}/iommu_group")))


@pytest.fixture
def pool(pve: Pve) -> Pve:
    with pve.fake.edit() as st:
        st["mappings"]["pool"] = POOL
        st["vms"]["101"]["config"]["hostpci0"] = "mapping=pool"
    return pve


def test_every_pool_entry_is_listed_with_its_vms(pool: Pve) -> None:
    vfs = _vfs(pool)
    for a in VFS[:3]:
        assert vfs[a]["pool"] == "pool" and vfs[a]["pool_vms"] == ["vm101"]
        assert vfs[a]["attached_to"] == []  # PVE picks the entry at start: no claim which
    assert vfs[VFS[3]]["pool"] is None and vfs[VFS[3]]["pool_vms"] == []
    show = pool("show", PF)
    assert show.code == 0, show.err
    assert "pool" in show.out and "vm101" in show.out


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_pool_member_refused_to_another_vm_even_with_force(pool: Pve, force: list[str]) -> None:
    n = pool.log_len()
    r = pool("attach", "102", PF, "vf1", *force, "--json")
    assert r.code == 4, r.err
    msg = r.json()["error"]["message"]
    assert "pool" in msg and "vm101" in msg and "never edits a mapping" in msg
    assert pool.writes_since(n) == [] and pool.mappings()["pool"] == POOL


def test_other_mapping_or_raw_of_pool_member_refused(token_pve: Pve) -> None:
    with token_pve.fake.edit() as st:
        st["mappings"]["pool"] = POOL
    r = token_pve("attach", "101", PF, "vf2", "--mapping", "mine", "--json")
    assert r.code == 4 and "pool" in r.json()["error"]["message"]
    assert set(token_pve.mappings()) == {"pool"}


def test_attach_by_pool_mapping_attaches_the_pool(pool: Pve) -> None:
    r = pool("attach", "102", PF, "vf1", "--mapping", "pool", "--json")
    assert r.code == 0, r.err
    assert pool.hostpci(102) == {"hostpci0": "mapping=pool"}
    assert any("first free entry" in w for w in r.json()["warnings"])
    assert pool.mappings()["pool"] == POOL  # all four entries kept, nothing re-pointed
    assert _vfs(pool)[VFS[1]]["pool_vms"] == ["vm101", "vm102"]
    again = pool("attach", "102", PF, "vf0", "--mapping", "pool", "--json")
    assert again.code == 0 and again.json()["changed"] is False
    out = pool("attach", "102", PF, "vf3", "--mapping", "pool", "--force", "--json")
    assert out.code == 4 and "not an entry of pool" in out.json()["error"]["message"]
    assert pool.mappings()["pool"] == POOL
    d = pool("detach", "102", PF, "vf1", "--json")
    assert d.code == 4 and "--mapping pool" in d.json()["error"]["message"]
    d = pool("detach", "102", PF, "vf1", "--mapping", "pool", "--json")
    assert d.code == 0, d.err
    assert pool.hostpci(102) == {} and pool.mappings()["pool"] == POOL


def test_foreign_single_entry_mapping_never_rewritten(pve: Pve) -> None:
    foreign = {"description": "made by hand", "map": [ENTRY.format(VFS[0])]}
    with pve.fake.edit() as st:
        st["mappings"]["nic"] = foreign
    for force in ([], ["--force"]):
        r = pve("attach", "101", PF, "vf2", "--mapping", "nic", *force, "--json")
        assert r.code == 4, r.err
        assert "not created by vfctl" in r.json()["error"]["message"]
    assert pve.mappings()["nic"] == foreign and pve.hostpci(101) == {}


@pytest.mark.parametrize(
    "args",
    [
        ["unbind", PF, "vf1"],
        ["unbind", PF, "vf1", "--force"],
        ["bind", PF, "vf1", "--driver", "ixgbevf", "--force"],
        ["disable", PF],
        ["disable", PF, "--force"],
        ["enable", PF, "2", "--force"],
    ],
)
def test_pool_vf_is_in_use_for_host_operations(token_pve: Pve, args: list[str]) -> None:
    assert token_pve("bind", PF, "vf1").code == 0  # before the pool exists
    with token_pve.fake.edit() as st:
        st["mappings"]["pool"] = POOL
        st["vms"]["101"]["config"]["hostpci0"] = "mapping=pool"
    r = token_pve(*args, "--json")
    assert r.code == 4, (r.out, r.err)
    msg = r.json()["error"]["message"]
    assert "pool" in msg and "vm101" in msg
    assert len(_vfs(token_pve)) == 4


def test_first_free_entry_at_start_and_held_by(token_pve: Pve) -> None:
    pve, root = token_pve, token_pve.root
    assert pve("bind", PF, "all").code == 0
    with pve.fake.edit() as st:
        st["mappings"]["pool"] = POOL
        for vmid in ("101", "102"):
            st["vms"][vmid]["config"]["hostpci0"] = "mapping=pool"
    # VM 105 is in its start window (time: reservation, no pid yet) holding the first entry;
    # VM 106 left a stale reservation of the fourth behind long ago
    import fakepve_start

    now = int(time.time())
    fakepve_start.reserve_only(pve.fake, 105, root, [VFS[0]], now)
    fakepve_start.reserve_only(pve.fake, 106, root, [VFS[3]], 1_000_000_000)
    assert pve.fake.start_vm(101, root, now=now) == {"hostpci0": [VFS[1]]}
    assert pve.fake.start_vm(102, root, now=now) == {"hostpci0": [VFS[2]]}
    lines = (root / "run/qemu-server/pci-id-reservations").read_text().splitlines()
    assert lines[0] == f"{VFS[0]} 105 time:{now + 10}"
    assert lines[1].startswith(f"{VFS[1]} 101 pid:")
    vfs = _vfs(pve)
    pid101 = int((root / "var/run/qemu-server/101.pid").read_text())
    assert vfs[VFS[1]]["held_by"] == {"vm": "vm101", "pid": pid101, "backend": "proxmox"}
    assert vfs[VFS[2]]["held_by"]["vm"] == "vm102"
    assert vfs[VFS[0]]["held_by"] == {"vm": "vm105", "pid": None, "backend": "proxmox"}
    assert vfs[VFS[3]]["held_by"] is None  # a time: reservation in the past is a leftover
    with pytest.raises(fakepve_start.StartError, match="could not find a free device"):
        with pve.fake.edit() as st:
            st["vms"]["104"]["node"] = "pve1"
            st["vms"]["104"]["config"]["hostpci0"] = "mapping=pool"
        fakepve_start.reserve_only(pve.fake, 105, root, [VFS[0]], now + 1e6)
        pve.fake.start_vm(104, root, now=now)
    # the running truth blocks host operations, whatever the configs say
    r = pve("unbind", PF, "vf1", "--force", "--json")
    assert r.code == 4 and "vm101" in r.json()["error"]["message"]
    pve.fake.stop_vm(101, root)
    assert _vfs(pve)[VFS[1]]["held_by"] is None


def test_held_by_a_vm_the_configs_do_not_name(token_pve: Pve) -> None:
    """A running QEMU holding the group is in use even when no config says so."""
    root = token_pve.root
    assert token_pve("bind", PF, "vf1").code == 0
    pid = sim_vm.start(root, "proxmox", "vm105", [_group(root, VFS[1])])
    vfs = _vfs(token_pve)
    assert vfs[VFS[1]]["held_by"] == {"vm": "vm105", "pid": pid, "backend": "proxmox"}
    assert vfs[VFS[1]]["attached_to"] == []
    r = token_pve("attach", "101", PF, "vf1", "--json")
    assert r.code == 4 and "vm105" in r.json()["error"]["message"]
    assert token_pve.hostpci(101) == {}


def test_invalid_strings_warned_and_skipped(token_pve: Pve) -> None:
    with token_pve.fake.edit() as st:
        st["vms"]["101"]["config"]["hostpci1"] = f"host={VFS[0]},mapping=pool"
        st["vms"]["101"]["config"]["hostpci2"] = "host=01:10.2,romfile=a;b"
        st["vms"]["102"]["config"]["hostpci0"] = f"host={VFS[3]}\n"
        st["mappings"]["bad"] = {"map": ["node=pve_1,path=0000:01:10.2,id=8086:10ed"]}
    r = token_pve("list", "--json")
    assert r.code == 0, r.err
    assert "VM 101 hostpci1" in r.err and "VM 101 hostpci2" in r.err
    assert "VM 102 hostpci0" in r.err and "PCI mapping bad entry 0" in r.err
    vfs = {v["address"]: v for p in r.json()["pfs"] for v in p["vfs"]}
    assert all(v["attached_to"] == [] for v in vfs.values())


def test_function_less_id_is_the_functions_that_exist(token_pve: Pve) -> None:
    with token_pve.fake.edit() as st:
        st["vms"]["101"]["config"]["hostpci0"] = "host=01:10"
    vfs = _vfs(token_pve)
    assert [a for a in VFS if vfs[a]["attached_to"]] == VFS
    be_inv = {a for a, v in vfs.items() if v["attached_to"]}
    assert be_inv <= set(os.listdir(token_pve.root / "sys/bus/pci/devices"))


def test_mdev_on_a_mapping_holds_no_function(token_pve: Pve) -> None:
    with token_pve.fake.edit() as st:
        st["mappings"]["gpu"] = {"mdev": 1, "map": [ENTRY.format(VFS[0])]}
        st["vms"]["101"]["config"]["hostpci0"] = "mapping=gpu,mdev=nvidia-63"
    assert _vfs(token_pve)[VFS[0]]["attached_to"] == []


def test_fake_rejects_what_pve_rejects(token_pve: Pve, tmp_path: Path) -> None:
    fake: FakePve = token_pve.fake
    import fakepve_start

    with fake.edit() as st:
        st["vms"]["101"]["config"]["hostpci0"] = f"host={VFS[0]},mapping=xy"
    with pytest.raises(fakepve_start.StartError, match="Cannot set both"):
        fake.start_vm(101, token_pve.root)
    with fake.edit() as st:
        st["vms"]["101"]["status"] = "stopped"
        st["vms"]["101"]["config"]["hostpci0"] = "host=0000:01:11.7"
    with pytest.raises(fakepve_start.StartError, match="no PCI device found"):
        fake.start_vm(101, token_pve.root)


def test_crafted_sysfs_values_never_reach_a_property_string(token_pve: Pve) -> None:
    """Issue 11 item 9: a crafted subsystem_vendor once added description= to a mapping entry."""
    dev = token_pve.root / f"sys/bus/pci/devices/{VFS[1]}"
    (dev / "subsystem_vendor").write_text("0x8086,description=pwned\n")
    r = token_pve("attach", "101", PF, "vf1", "--json")
    assert r.code == 0, r.err
    (entry,) = token_pve.mappings()["vf-enp1s0f0-1"]["map"]
    assert "description" not in entry and "subsystem-id" not in entry
    assert entry.startswith(f"node=pve1,path={VFS[1]},id=8086:10ed,iommugroup=")


def test_vfctl_pool_vf_moves_only_with_force(token_pve: Pve) -> None:
    """A pool vfctl made is vfctl's to move: refused without --force, allowed with it."""
    assert token_pve("bind", PF, "vf1").code == 0
    with token_pve.fake.edit() as st:
        st["mappings"]["mine"] = {**POOL, "description": "vfctl: pool"}
        st["vms"]["101"]["config"]["hostpci0"] = "mapping=mine"
    r = token_pve("unbind", PF, "vf1", "--json")
    assert r.code == 4 and "mine" in r.json()["error"]["message"]
    assert "--force" in r.json()["error"]["message"]
    assert token_pve("unbind", PF, "vf1", "--force", "--json").code == 0
