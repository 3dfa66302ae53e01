"""The crash matrix: kill -9 at seeded random points of enable, bind, set and apply, then
`vfctl recover`; the host must be exactly as before the run (or as after it, when the kill
came after the run had finished and removed its journal).

"As before" is what an admin checks (drivers, driver_override, netdevs, admin settings of every
VF, sriov_numvfs and autoprobe of the PF) read back independently of vfctl's own snapshot:
from `vfctl list --json` and the simulator's netlink model. Each point runs the command in a
child process (tests/host/crashrun.py) that SIGKILLs itself at its k-th state-changing file
operation: simulator writes, tree updates and vfctl's journal writes.

`make crash-matrix` runs all 100 points (VFCTL_CRASH_POINTS=100); the default suite runs a
seeded subset of them, spread over every scenario.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simcli import SimHost

from vfctl import sim

PF = "enp1s0"  # the minimal preset: one 82576 port (igb), VFs on igbvf with netdevs
SEED = 11
TOTAL = int(os.environ.get("VFCTL_CRASH_POINTS", "24"))
RUNNER = Path(__file__).with_name("crashrun.py")

PROFILE_VFIO = """version: 1
pfs:
  - match: {netdev: enp1s0}
    total-vfs: 4
    drivers-autoprobe: false
    vfs:
      - {id: 0, driver: vfio-pci, mac-address: "02:00:00:00:00:10", vlan-id: 10}
      - {id: 1, driver: vfio-pci}
      - {id: 2, trust: true}
"""
PROFILE_HOST = """version: 1
pfs:
  - match: {netdev: enp1s0}
    total-vfs: 3
    drivers-autoprobe: true
    vfs:
      - {id: 0, mac-address: "02:00:00:00:00:20", vlan-id: 20, spoof-check: false}
      - {id: 1, driver: vfio-pci}
"""


@dataclass(frozen=True)
class Scenario:
    setup: tuple[tuple[str, ...], ...]
    cmd: tuple[str, ...]
    profile: str | None = None


# the start: host-driver VFs (igbvf, netdevs), one with admin settings, one on vfio-pci
_HOSTVFS = (
    ("enable", PF, "3"),
    ("set", PF, "vf0", "--mac", "02:00:00:00:00:01", "--vlan", "7", "--trust", "on"),
    ("bind", PF, "vf2"),
)
_NOPROBE = (("enable", PF, "3", "--no-autoprobe"), ("bind", PF, "vf1"))
_SET = ("set", PF, "vf1", "--mac", "02:00:00:00:00:02", "--vlan", "9", "--qos", "2",
        "--spoofchk", "off", "--trust", "on", "--max-tx-rate", "100")  # fmt: skip
SCENARIOS = {
    "enable-recount": Scenario(_HOSTVFS, ("enable", PF, "5")),
    "enable-autoprobe-off": Scenario(_HOSTVFS, ("enable", PF, "4", "--no-autoprobe")),
    "enable-autoprobe-on": Scenario(_NOPROBE, ("enable", PF, "2", "--autoprobe")),
    "disable": Scenario(_HOSTVFS, ("disable", PF, "--force")),
    "bind": Scenario(_HOSTVFS, ("bind", PF, "vf0-1")),
    "unbind": Scenario(_HOSTVFS, ("unbind", PF, "all")),
    "set": Scenario(_HOSTVFS, _SET),
    "apply-autoprobe-off": Scenario(_HOSTVFS, ("apply", "{profile}"), PROFILE_VFIO),
    "apply-autoprobe-on": Scenario(_NOPROBE, ("apply", "{profile}"), PROFILE_HOST),
}


def _points() -> list[Any]:
    names = sorted(SCENARIOS)
    picked = [(names[i % len(names)], i // len(names)) for i in range(100)][:TOTAL]
    return [pytest.param(n, i, id=f"{n}-{i}") for n, i in picked]


def host_view(h: SimHost) -> dict[str, Any]:
    """What the admin compares: per PF count and autoprobe; per VF driver, override, netdev,
    admin settings (the VF netdev's own random MAC excluded: no rollback can restore it)."""
    doc = h("list", "--json").json()
    out = {}
    for pf in doc["pfs"]:
        vfs = [
            {k: v[k] for k in ("index", "address", "driver", "driver_override", "netdev")}
            for v in pf["vfs"]
        ]
        settings = sim.vf_info(h.root, pf["netdev"]) if pf["netdev"] and pf["num_vfs"] else []
        out[pf["address"]] = {
            "num_vfs": pf["num_vfs"], "autoprobe": pf["autoprobe"], "vfs": vfs,
            "settings": settings,
        }  # fmt: skip
    return out


def _prepare(sc: Scenario) -> Callable[[SimHost], None]:
    def prepare(h: SimHost) -> None:
        sim.modprobe(h.root, "vfio-pci")
        for args in sc.setup:
            r = h(*args)
            assert r.code == 0, (args, r.err)

    return prepare


def _run(h: SimHost, sc: Scenario, k: int, tmp: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    prof = tmp / "profile.yaml"
    if sc.profile is not None:
        prof.write_text(sc.profile)
    args = [a.replace("{profile}", str(prof)) for a in sc.cmd]
    count = tmp / f"count-{k}"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(k), str(count), "--root", str(h.root),
         "--backend", "none", *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    return proc, int(count.read_text()) if count.exists() else -1


_CALLS: dict[str, tuple[int, dict[str, Any]]] = {}


@pytest.mark.parametrize(("name", "i"), _points())
def test_kill_then_recover_restores_the_host(
    name: str, i: int, new_host: Callable[..., SimHost], tmp_path: Path
) -> None:
    sc = SCENARIOS[name]
    key = f"crash-{name}"
    if name not in _CALLS:  # one uninterrupted run: how many operations, and the end state
        h = new_host(key, "minimal", _prepare(sc))
        proc, calls = _run(h, sc, 0, tmp_path)
        assert proc.returncode == 0 and calls > 0, proc.stderr
        _CALLS[name] = (calls, host_view(h))
    calls, after = _CALLS[name]
    k = random.Random(f"{SEED}/{name}/{i}").randint(1, calls)
    h = new_host(key, "minimal", _prepare(sc))
    before = host_view(h)
    proc, _ = _run(h, sc, k, tmp_path)
    assert proc.returncode == -9, (k, proc.returncode, proc.stderr)  # killed, as planned
    rec = h("recover", "--json")
    assert rec.code == 0, (k, rec.out, rec.err)
    doc = rec.json()
    now = host_view(h)
    recovered = bool(doc["rolled_back"])
    if recovered:
        assert now == before, f"kill at {k}/{calls}: host differs after recover"
    else:  # killed before its first action or after the run had removed its journal
        assert now in (before, after), f"kill at {k}/{calls}: host neither before nor after"
    if os.environ.get("VFCTL_CRASH_LOG"):  # make crash-matrix: what each point exercised
        with open(os.environ["VFCTL_CRASH_LOG"], "a") as f:
            what = "recovered" if recovered else ("finished" if now == after else "untouched")
            f.write(f"{name} {k}/{calls} {what}\n")
    assert not (h.root / "run/vfctl/journal.json").exists()
