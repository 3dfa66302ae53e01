"""Rollback and recover give back the host as it was before the run, and prove it: the
journal holds a snapshot from the start, and both end by comparing the host against it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from simcli import SimHost

from vfctl import plan
from vfctl.host.open import open_host

PF = "enp2s0f0"  # default preset: an 82576 port (igb), VFs on igbvf with netdevs
JOURNAL = "run/vfctl/journal.json"


def _vfs(h: SimHost) -> list[dict[str, Any]]:
    keys = ("address", "driver", "driver_override", "netdev", "vlan", "trust")
    return [{k: v[k] for k in keys} for v in h("show", PF, "--json").json()["vfs"]]


def test_no_autoprobe_rollback_gives_host_driver_vfs_back(host: SimHost) -> None:
    """enable --no-autoprobe fails after the count went to 0: the undo re-creates the old
    VFs under the autoprobe value they were created with, so igbvf binds them again."""
    assert host("enable", PF, "2").code == 0
    assert host("set", PF, "vf1", "--vlan", "5").code == 0
    before = _vfs(host)
    assert [v["driver"] for v in before] == ["igbvf", "igbvf"] and before[0]["netdev"]
    host.faults([{"path": "*/sriov_numvfs", "value": "4", "errno": "EIO"}])
    r = host("enable", PF, "4", "--no-autoprobe", "--json")
    assert r.code == 5 and "rolled back" in r.err and "INCOMPLETE" not in r.err
    assert _vfs(host) == before
    assert host("show", PF, "--json").json()["autoprobe"] is True
    assert not (host.root / JOURNAL).exists()


def _register_lossy_op() -> None:
    """An op whose undo claims success but gives nothing back: rollback must notice."""

    def forward(ctx: plan.Context, p: Mapping[str, Any]) -> None:
        ctx.host.write(p["path"], p["value"])

    plan.OPS["test.lossy"] = forward
    plan.OPS["test.noop"] = lambda ctx, p: None


def test_rollback_that_leaves_a_difference_is_reported_and_kept(host: SimHost) -> None:
    assert host("enable", PF, "2").code == 0
    vf0 = host("show", PF, "--json").json()["vfs"][0]["address"]
    _register_lossy_op()
    h = open_host(host.root)
    path = f"sys/bus/pci/devices/{vf0}/driver_override"
    acts = [
        plan.Action("test.lossy", vf0, "override -> pci-stub", {"path": path, "value": "pci-stub"},
                    plan.Action("test.noop", vf0, "nothing", {})),
        plan.Action("sysfs.write", "x", "fails", {"path": "sys/nonexistent", "value": "1"}),
    ]  # fmt: skip
    with pytest.raises(plan.ExecutionFailed) as ei:
        plan.execute(plan.Context(h), acts)
    res = ei.value.result
    assert res.error is not None and res.error.exit_code == 5
    assert "ROLLBACK INCOMPLETE" in res.error.message
    assert f"{vf0} (VF 0 of " in res.error.message and "driver_override pci-stub, was none" in (
        res.error.message
    )
    assert (host.root / JOURNAL).exists()  # kept for recover
    r = host("recover", "--json")
    assert r.code == 5 and r.json()["error"]["kind"] == "host"
    assert "driver_override pci-stub, was none" in r.err and (host.root / JOURNAL).exists()
    assert host("unbind", PF, "vf0").code == 4  # refused while the journal is there
    open_host(host.root).write(path, "\n")  # the admin fixes it by hand
    r = host("recover", "--json")
    assert r.code == 0, r.err
    assert not (host.root / JOURNAL).exists()


def test_journal_records_the_snapshot_and_absolute_root(host: SimHost) -> None:
    """The snapshot is written before the first action, with the root as an absolute path."""
    assert host("enable", PF, "2").code == 0
    host.faults([{"path": "*/sriov_numvfs", "value": "0", "errno": "EIO"}])
    seen: dict[str, Any] = {}
    real = plan.Journal.save

    def spy(self: plan.Journal, data: Mapping[str, Any]) -> None:
        seen.setdefault("first", json.loads(json.dumps(data)))
        real(self, data)

    mp = pytest.MonkeyPatch()
    mp.setattr(plan.Journal, "save", spy)
    try:
        assert host("disable", PF).code == 5
    finally:
        mp.undo()
    first = seen["first"]
    assert first["root"] == str(host.root.resolve()) and first["done"] == 0
    pf = next(p for p in first["before"]["pfs"].values() if p["netdev"] == PF)
    assert pf["num_vfs"] == 2 and [v["driver"] for v in pf["vfs"]] == ["igbvf", "igbvf"]
    assert all(v["netdev"] is True for v in pf["vfs"])
