"""The fault-injection matrix of enable / disable / bind / unbind on a simulated host.

Every point makes one write of a command fail (the Nth write of the run, through
``.vfctl-sim/faults.json``) or makes the driver misbehave (fewer VFs, a VF that never
appears, a driver that binds late), then checks what an admin would: exit 5, one line that
says what was rolled back, the --json envelope, and a host exactly as it was before.

"Exactly as before" means everything the kernel lets vfctl restore: the PCI devices and their
drivers, sriov_numvfs, sriov_drivers_autoprobe, driver_override, the loaded drivers and what
each has bound, IOMMU groups, /dev/vfio nodes, netdev names, the VF settings the PF reports,
and no journal left behind. It excludes what no rollback can bring back once the kernel has
destroyed and re-created a VF (the undo of "N -> 0"): the random MAC the VF driver gives the
VF's own netdev. Admin VF settings (MAC, VLAN, trust, ...) and driver_override of re-created
VFs are re-applied by the undo itself (test_rollback_restores_recreated_vfs). Modules stay loaded (nobody unloads vfio-pci on rollback), so the bind
scenario starts with vfio-pci already loaded.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simcli import Run, SimHost

from vfctl import ops_host, sim

PF = "enp1s0"  # the minimal preset: one 82576 (igb, 7 VFs), few VFs keep the sim fast
PF_ADDR = "0000:01:00.0"
BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
ERRNOS = ("EBUSY", "EIO", "ENOMEM", "ENODEV")


@dataclass(frozen=True)
class Scenario:
    setup: tuple[tuple[str, ...], ...]  # commands that bring the host to the start state
    cmd: tuple[str, ...]
    writes: tuple[int, ...]  # for each write of the command: the index of its action
    vfio_loaded: bool = False


SCENARIOS: dict[str, Scenario] = {
    "enable": Scenario((), ("enable", PF, "3"), (0,)),
    # sriov_drivers_autoprobe 1 -> 0, then sriov_numvfs 0 -> 2
    "enable-no-autoprobe": Scenario((), ("enable", PF, "2", "--no-autoprobe"), (0, 1)),
    # a different non-zero count goes through 0: sriov_numvfs 2 -> 0, 0 -> 3
    "enable-recount": Scenario((("enable", PF, "2"),), ("enable", PF, "3"), (0, 1)),
    "disable": Scenario((("enable", PF, "3"),), ("disable", PF), (0,)),
    # per VF: driver_override, unbind from igbvf, drivers_probe
    "bind": Scenario((("enable", PF, "2"),), ("bind", PF, "vf0-1"), (0, 0, 0, 1, 1, 1), True),
    # per VF: driver_override cleared, unbind from vfio-pci, drivers_probe
    "unbind": Scenario(
        (("enable", PF, "2"), ("bind", PF, "vf0-1")), ("unbind", PF, "all"), (0, 0, 0, 1, 1, 1)
    ),
}


def _errno_points() -> list[Any]:
    """Every write of every command fails in turn. The errno rotates over the writes, and every
    write after the first (something already done: mid-way) also fails with ENODEV, the device
    vanishing, which vfctl tolerates from drivers_probe only when the VF cannot probe."""
    pairs = [(n, pos) for n, sc in SCENARIOS.items() for pos in range(1, len(sc.writes) + 1)]
    points = []
    for i, (name, pos) in enumerate(pairs):
        errs = [ERRNOS[i % len(ERRNOS)]]
        if pos > 1 and errs[0] != "ENODEV":
            errs.append("ENODEV")
        points += [pytest.param(name, pos, e, id=f"{name}-w{pos}-{e}") for e in errs]
    return points


# ---------------------------------------------------------------- hosts and state


def _prepare(name: str) -> Callable[[SimHost], None]:
    def prepare(h: SimHost) -> None:
        sc = SCENARIOS[name]
        if sc.vfio_loaded:
            sim.modprobe(h.root, "vfio-pci")
        for args in sc.setup:
            r = h(*args)
            assert r.code == 0, (args, r.err)

    return prepare


@pytest.fixture
def fresh(new_host: Callable[..., SimHost]) -> Callable[[str], SimHost]:
    """One prepared host per scenario, built once and copied for every point."""
    return lambda name: new_host(f"faults-{name}", "minimal", _prepare(name))


def _ls(p: Path) -> list[str]:
    return sorted(os.listdir(p)) if p.is_dir() else []


def host_state(h: SimHost) -> dict[str, Any]:
    """Everything a rollback must restore (see the module docstring for what it cannot)."""
    s = h.snapshot_state()  # `list --json` without VF MACs, devices, driver links
    attrs = {}
    for d in s["devices"]:
        for a in ("sriov_numvfs", "sriov_drivers_autoprobe", "driver_override"):
            p = h.root / h.dev(d, a)
            if p.exists():
                attrs[f"{d}/{a}"] = p.read_text().strip()
    drivers = h.root / "sys/bus/pci/drivers"
    groups = h.root / "sys/kernel/iommu_groups"
    s.update(
        attrs=attrs,
        drivers={
            drv: bound
            for drv in _ls(drivers)
            if (bound := [x for x in _ls(drivers / drv) if BDF.match(x)])
        },
        loaded=set(_ls(drivers)),
        groups={g: _ls(groups / g / "devices") for g in _ls(groups)},
        vfio=_ls(h.root / "dev/vfio"),
        netdevs=_ls(h.root / "sys/class/net"),
        vf_settings=sim.vf_info(h.root, PF),
        journal=(h.root / "run/vfctl/journal.json").exists(),
    )
    return s


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Equal, except that a VF driver the kernel loaded on VF creation stays loaded."""
    b, a = dict(before), dict(after)
    loaded_b, loaded_a = b.pop("loaded"), a.pop("loaded")
    assert loaded_b <= loaded_a <= loaded_b | {"igbvf"}
    assert a == b


def new_writes(h: SimHost, since: int) -> list[list[str]]:
    return [w.split("\t") for w in h.writes()[since:]]


def assert_rolled_back(r: Run, k: int) -> dict[str, Any]:
    """Exit 5, one stderr line naming what was undone, and an envelope that says the same."""
    assert r.code == 5, (r.code, r.err)
    doc: dict[str, Any] = r.json()
    assert doc["changed"] is False and doc["error"]["kind"] == "host"
    # the failing action may have half-happened: it is undone with the ones before it
    want = list(reversed(doc["actions"][: k + 1]))
    assert doc["rolled_back"] == want
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfctl: error: ")
    undone = ", ".join(f"{a['target']} ({a['detail']})" for a in want)
    assert f"rolled back: {undone}" in lines[0]
    assert doc["error"]["message"] in lines[0]
    assert "ROLLBACK INCOMPLETE" not in lines[0]
    return doc


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("name", "pos", "err"), _errno_points())
def test_write_fails(fresh: Callable[[str], SimHost], name: str, pos: int, err: str) -> None:
    sc = SCENARIOS[name]
    h = fresh(name)
    before = host_state(h)
    since = len(h.writes())
    h.faults([{"path": "*", "errno": err, "after": pos - 1, "times": 1}])
    r = h(*sc.cmd, "--json")
    writes = new_writes(h, since)
    # the fault hit the write it was meant for, and every write before it succeeded
    assert [w[2] for w in writes[:pos]] == ["ok"] * (pos - 1) + [err], writes
    doc = assert_rolled_back(r, sc.writes[pos - 1])
    assert len(doc["actions"]) == max(sc.writes) + 1
    assert f"{err}: " in doc["error"]["message"]
    assert_same(before, host_state(h))


@pytest.mark.parametrize(
    ("name", "rule", "k", "words"),
    [
        pytest.param("enable", {"mode": "partial", "create": 1}, 0, "it created 1", id="enable"),
        pytest.param(
            "enable-recount", {"mode": "partial"}, 1, "it created 2", id="enable-recount"
        ),
        pytest.param(
            "enable-no-autoprobe", {"mode": "partial", "create": 0}, 1, "it created 0",
            id="enable-no-autoprobe",
        ),
    ],
)  # fmt: skip
def test_partial_creation(
    fresh: Callable[[str], SimHost], name: str, rule: dict[str, Any], k: int, words: str
) -> None:
    """The driver enables fewer VFs than asked (the kernel only warns): an error, rolled back."""
    h = fresh(name)
    before = host_state(h)
    h.faults([{"path": "*/sriov_numvfs", "value": SCENARIOS[name].cmd[2], **rule}])
    doc = assert_rolled_back(h(*SCENARIOS[name].cmd, "--json"), k)
    assert "asked the driver for" in doc["error"]["message"] and words in doc["error"]["message"]
    assert_same(before, host_state(h))


@pytest.mark.parametrize(("name", "k"), [("enable", 0), ("enable-recount", 1)])
def test_vf_never_appears(fresh: Callable[[str], SimHost], name: str, k: int) -> None:
    """numvfs reads N but one VF never shows up: vfctl times out and rolls back."""
    sc = SCENARIOS[name]
    h = fresh(name)
    before = host_state(h)
    h.faults([{"path": "*/sriov_numvfs", "value": sc.cmd[2], "mode": "no_vf", "vf": 1}])
    doc = assert_rolled_back(h(*sc.cmd, "--timeout", "0.3", "--json"), k)
    msg = doc["error"]["message"]
    assert f"timed out after 0.3s waiting for {sc.cmd[2]} VFs of {PF_ADDR}" in msg
    assert_same(before, host_state(h))


class _Sleeps:
    """Counts the wait loop's sleeps: zero when the awaited state was already there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = ops_host.time

        def sleep(s: float) -> None:
            self.n += 1
            real.sleep(s)

        monkeypatch.setattr(
            ops_host, "time", types.SimpleNamespace(monotonic=real.monotonic, sleep=sleep)
        )


@pytest.mark.parametrize(
    ("name", "path", "waits"),
    [
        ("enable", "*/sriov_numvfs", True),
        ("enable-recount", "*/sriov_numvfs", True),
        ("enable-no-autoprobe", "*/sriov_numvfs", False),  # no VF driver to wait for
        ("bind", "sys/bus/pci/drivers_probe", True),
        ("unbind", "sys/bus/pci/drivers_probe", False),  # the default driver is not awaited
    ],
)
def test_driver_binds_late(
    fresh: Callable[[str], SimHost],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    path: str,
    waits: bool,
) -> None:
    """A driver that binds after the write returns: vfctl waits, and ends where a prompt run
    does."""
    sc = SCENARIOS[name]
    sleeps = _Sleeps(monkeypatch)
    prompt = fresh(name)
    assert prompt(*sc.cmd).code == 0
    assert sleeps.n == 0  # nothing to wait for when the driver binds at once
    h = fresh(name)
    h.faults([{"path": path, "mode": "late_bind", "times": None}])
    r = h(*sc.cmd, "--json")
    assert r.code == 0, r.err
    assert r.json()["changed"] is True and r.json()["error"] is None
    assert (sleeps.n > 0) == waits
    late, ref = host_state(h), host_state(prompt)
    for s in (late, ref):  # VF netdev MACs are random per creation
        s.pop("vf_settings")
    assert late == ref


# ---------------------------------------------------------------- after a rollback


def test_host_is_usable_after_a_rollback(fresh: Callable[[str], SimHost]) -> None:
    """No journal or lock is left behind: the same command, without the fault, succeeds."""
    h = fresh("bind")
    h.faults([{"path": "*", "errno": "EIO", "after": 4, "times": 1}])
    assert h("bind", PF, "vf0-1").code == 5
    r = h("bind", PF, "vf0-1", "--json")
    assert r.code == 0, r.err
    vfs = h("show", PF, "--json").json()["vfs"]
    assert [v["driver"] for v in vfs] == ["vfio-pci", "vfio-pci"]


def test_rollback_restores_recreated_vfs(fresh: Callable[[str], SimHost]) -> None:
    """A rollback that re-creates removed VFs gives them back their binding and admin
    settings (the kernel keeps none): MAC, VLAN, trust and driver_override as before."""
    h = fresh("enable-recount")
    assert h("set", PF, "vf0", "--mac", "02:00:00:00:00:aa", "--vlan", "7", "--trust", "on").code == 0
    assert h("bind", PF, "vf1").code == 0
    before = h("show", PF, "--json").json()["vfs"]
    h.faults([{"path": "*", "errno": "ENOMEM", "after": 1, "times": 1}])
    r = h("enable", PF, "3")
    assert r.code == 5 and "rolled back" in r.err and "INCOMPLETE" not in r.err
    vfs = h("show", PF, "--json").json()["vfs"]
    keys = ("address", "driver", "driver_override", "mac", "vlan", "trust", "spoofchk")
    assert [{k: v[k] for k in keys} for v in vfs] == [{k: v[k] for k in keys} for v in before]
    assert vfs[0]["mac"] == "02:00:00:00:00:aa" and vfs[1]["driver"] == "vfio-pci"

