"""enable / disable / bind / unbind on simulated hosts: kernel rules, safety, journal, lock."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from simcli import SimHost, pf_by_driver

import vfctl.ops_host  # noqa: F401  (registers the host ops this test replays)
from vfctl import plan
from vfctl.host.open import open_host


def numvfs_writes(h: SimHost) -> list[str]:
    return [w for w in h.writes() if "sriov_numvfs" in w]


def test_enable_creates_vfs_and_is_idempotent(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    r = host("enable", pf["netdev"], "8", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["changed"] is True and doc["error"] is None
    assert [a["op"] for a in doc["actions"]] == ["sriov.numvfs"]
    shown = host("show", pf["netdev"], "--json").json()
    assert shown["num_vfs"] == 8 and len(shown["vfs"]) == 8
    assert all(v["driver"] == "ixgbevf" for v in shown["vfs"])
    before = host.writes()
    again = host("enable", pf["netdev"], "8", "--json").json()
    assert again == {"changed": False, "actions": [], "rolled_back": [], "warnings": [], "error": None}
    assert host.writes() == before  # no write at all the second time


def test_change_count_goes_through_zero(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    host("enable", pf["netdev"], "8")
    doc = host("enable", pf["netdev"], "4", "--json").json()
    assert [a["detail"] for a in doc["actions"]] == ["8 -> 0", "0 -> 4"]
    assert host.read(host.dev(pf["address"], "sriov_numvfs")) == "4"
    assert not host.exists(host.dev(pf["address"], "virtfn4"))


def test_check_changes_nothing(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    before = host.writes()
    doc = host("enable", pf["netdev"], "4", "--check", "--json").json()
    assert doc["changed"] is True and len(doc["actions"]) == 1
    assert host.writes() == before and host.read(host.dev(pf["address"], "sriov_numvfs")) == "0"


def test_above_totalvfs_refused_before_writing(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    r = host("enable", pf["netdev"], "8", "--json")
    assert r.code == 2 and "sriov_totalvfs is 7" in r.err and "capability allows 8" in r.err
    assert r.json()["error"]["kind"] == "invalid" and numvfs_writes(host) == []


def test_pf_without_driver(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    open_host(host.root).write("sys/bus/pci/drivers/igb/unbind", pf["address"])
    r = host("enable", pf["address"], "2")
    assert r.code == 5 and "no driver bound" in r.err and "ENOENT" in r.err
    assert numvfs_writes(host) == []


def test_no_autoprobe_leaves_vfs_driverless(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    doc = host("enable", pf["netdev"], "3", "--no-autoprobe", "--json").json()
    assert [a["op"] for a in doc["actions"]] == ["sysfs.write", "sriov.numvfs"]
    shown = host("show", pf["netdev"], "--json").json()
    assert shown["autoprobe"] is False and [v["driver"] for v in shown["vfs"]] == [None] * 3


def test_disable(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "3")
    assert host("disable", pf["netdev"]).code == 0
    assert host("show", pf["netdev"], "--json").json()["vfs"] == []
    assert host("disable", pf["netdev"], "--json").json()["changed"] is False


def _hold_vfio(h: SimHost, group: int, pid: int = 4242) -> None:
    fd = h.root / f"proc/{pid}/fd"
    fd.mkdir(parents=True, exist_ok=True)
    os.symlink(f"/dev/vfio/{group}", fd / "17")
    (h.root / f"proc/{pid}/comm").write_text("qemu-system-x86\n")


def test_open_vfio_group_blocks_numvfs_change_even_with_force(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "2")
    assert host("bind", pf["netdev"], "vf1").code == 0
    vf1 = host("show", pf["netdev"], "--json").json()["vfs"][1]
    assert vf1["driver"] == "vfio-pci" and host.exists(f"dev/vfio/{vf1['iommu_group']}")
    _hold_vfio(host, vf1["iommu_group"])
    before = numvfs_writes(host)
    for args in (("disable", pf["netdev"]), ("disable", pf["netdev"], "--force"),
                 ("enable", pf["netdev"], "3", "--force")):
        r = host(*args)
        assert r.code == 4 and "pid 4242 (qemu-system-x86)" in r.err and vf1["address"] in r.err
    assert numvfs_writes(host) == before


def test_vf_netdev_with_addresses_needs_force(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "2")
    vf0 = host("show", pf["netdev"], "--json").json()["vfs"][0]

    def give_ip(st: dict[str, Any]) -> None:
        st["addresses"][vf0["netdev"]] = ["198.51.100.7/24"]
        dev = st["devices"][vf0["address"]]
        dev["net"]["up"] = True

    host.edit_state(give_ip)
    r = host("disable", pf["netdev"])
    assert r.code == 4 and "198.51.100.7/24" in r.err and "--force" in r.err
    r = host("unbind", pf["netdev"], "vf0")
    assert r.code == 0  # no override set: nothing to do, nothing touched
    r = host("bind", pf["netdev"], "vf0")
    assert r.code == 4 and "has addresses 198.51.100.7/24" in r.err
    assert host("disable", pf["netdev"], "--force").code == 0


def test_host_nic_guard(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")

    def route_via_pf(st: dict[str, Any]) -> None:
        st["routes"] = [{"dst": "default", "gateway": "192.0.2.1", "dev": pf["netdev"]}]

    host.edit_state(route_via_pf)
    for extra in ((), ("--force",)):
        r = host("enable", pf["netdev"], "4", *extra)
        assert r.code == 4 and "default route" in r.err and "--force-host-nic" in r.err
    assert numvfs_writes(host) == []
    assert host("enable", pf["netdev"], "4", "--force-host-nic").code == 0


def test_bind_and_unbind_round_trip(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    host("enable", pf["netdev"], "4")
    doc = host("bind", pf["netdev"], "vf0-1,3", "--json").json()
    assert [a["target"].split()[0] for a in doc["actions"]] == [
        v["address"] for v in host("show", pf["netdev"], "--json").json()["vfs"] if v["index"] in (0, 1, 3)]
    vfs = host("show", pf["netdev"], "--json").json()["vfs"]
    assert [v["driver"] for v in vfs] == ["vfio-pci", "vfio-pci", "ixgbevf", "vfio-pci"]
    assert all(host.exists(f"dev/vfio/{v['iommu_group']}") for v in vfs if v["driver"] == "vfio-pci")
    assert not any("new_id" in w for w in host.writes())
    assert host("bind", pf["netdev"], "vf0", "--json").json()["changed"] is False
    assert host("unbind", pf["netdev"], "all").code == 0
    vfs = host("show", pf["netdev"], "--json").json()["vfs"]
    assert [v["driver"] for v in vfs] == ["ixgbevf"] * 4
    assert all(v["driver_override"] is None for v in vfs)


def test_bind_refuses_non_viable_iommu_group(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "2")
    vf0 = host("show", pf["netdev"], "--json").json()["vfs"][0]

    def share_group(st: dict[str, Any]) -> None:  # as without ACS: VF grouped with its PF
        st["devices"][vf0["address"]]["iommu_group"] = pf["iommu_group"]

    host.edit_state(share_group)
    before = host.writes()
    r = host("bind", pf["netdev"], "vf0")
    assert r.code == 4 and f"IOMMU group {pf['iommu_group']} is not viable" in r.err
    assert pf["address"] in r.err and "driver igb" in r.err and pf["netdev"] in r.err
    assert host.writes() == before


def test_killed_run_blocks_next_and_recover_rolls_back(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    h = open_host(host.root)

    # a journal as a run killed during its second action leaves it: action 0 done, 1 started
    acts = [plan.Action("sriov.numvfs", f"{pf['address']} sriov_numvfs", "0 -> 3",
                        {"pf": pf["address"], "num": 3, "probe": True},
                        plan.Action("sriov.numvfs", f"{pf['address']} sriov_numvfs", "3 -> 0",
                                    {"pf": pf["address"], "num": 0})),
            plan.Action("sysfs.write", "x", "killed here", {})]
    journal = plan.Journal(h)
    record = {"pid": 999999, "started": 0, "actions": [a.to_record() for a in acts], "done": 1,
              "current": 1}
    plan.OPS["sriov.numvfs"](plan.Context(h), acts[0].params)  # registered by importing ops_host
    journal.save(record)
    r = host("enable", pf["netdev"], "2")
    assert r.code == 4 and "vfctl recover" in r.err
    doc = host("recover", "--json").json()
    assert [a["detail"] for a in doc["rolled_back"]] == ["0 -> 3"]
    assert host.read(host.dev(pf["address"], "sriov_numvfs")) == "0"
    assert host("enable", pf["netdev"], "2").code == 0


def test_concurrent_runs_serialize(host: SimHost) -> None:
    """8 processes enable/bind at once: the host lock serializes them; the end state is whole."""
    pf = pf_by_driver(host, "ixgbe")
    other = pf_by_driver(host, "igb")
    env = dict(os.environ, VFCTL_ROOT=str(host.root), VFCTL_BACKEND="none")
    cmds = [["enable", pf["netdev"], "6"], ["enable", other["netdev"], "4"]] * 2 + [
        ["bind", pf["netdev"], "vf0"], ["bind", other["netdev"], "vf1"],
        ["enable", pf["netdev"], "6"], ["bind", pf["netdev"], "vf2"]]

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vfctl", *args, "--json", "--wait", "60"],
                              env=env, capture_output=True, text=True, check=False)

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(run, cmds))
    # a bind that ran before its enable finds no VF (exit 3); nothing else may fail
    for args, res in zip(cmds, results, strict=True):
        assert res.returncode in ((0, 3) if args[0] == "bind" else (0,)), (args, res.stderr)
    a = host("show", pf["netdev"], "--json").json()
    b = host("show", other["netdev"], "--json").json()
    assert a["num_vfs"] == 6 and len(a["vfs"]) == 6 and b["num_vfs"] == 4 and len(b["vfs"]) == 4
    assert not Path(host.root / "run/vfctl/journal.json").exists()
    for v in a["vfs"] + b["vfs"]:
        assert v["driver"] in ("ixgbevf", "igbvf", "vfio-pci")
        assert (v["driver"] == "vfio-pci") == (v["driver_override"] == "vfio-pci")


def test_lock_timeout_exit_7(host: SimHost) -> None:
    import fcntl

    lock = host.root / "run/vfctl/lock"
    lock.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = host("enable", "enp2s0f0", "2", "--wait", "0.2", "--json")
    assert r.code == 7 and r.json()["error"]["kind"] == "lock"
    assert f"(pid {os.getpid()}," in r.err  # the kernel's holder, not a pid from the file
