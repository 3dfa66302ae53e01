"""Drift: `--detailed-exitcode` on plan/apply (0 nothing to do, 2 changes pending, 1 invalid
input) and `vfctl drift PROFILE --json` (PF, VF, key, want, have)."""

from __future__ import annotations

import shlex
from pathlib import Path

from simcli import SimHost, pf_by_driver

REPO = Path(__file__).resolve().parents[2]


def _profile(tmp: Path, netdev: str) -> str:
    p = tmp / "p.yaml"
    p.write_text(
        f"version: 1\npfs:\n  - match: {{netdev: {netdev}}}\n    total-vfs: 3\n    vfs:\n"
        "      - id: 1\n        mac-address: 02:00:00:00:00:21\n        vlan-id: 10\n"
        "      - id: 2\n        driver: vfio-pci\n"
    )
    return str(p)


def test_detailed_exitcode(host: SimHost, tmp_path: Path) -> None:
    prof = _profile(tmp_path, pf_by_driver(host, "igb")["netdev"])
    before = host.writes()
    assert host("apply", prof, "--check", "--detailed-exitcode").code == 2
    r = host("plan", prof, "--detailed-exitcode", "--json")
    assert r.code == 2 and r.json()["changed"] is True and r.json()["error"] is None
    assert host.writes() == before  # checking changed nothing
    assert host("apply", prof, "--check").code == 0  # without the flag: plain success
    assert host("apply", prof, "--detailed-exitcode").code == 2  # changes made (as Puppet's)
    assert host("apply", prof, "--check", "--detailed-exitcode").code == 0
    assert host("plan", prof, "--detailed-exitcode").code == 0
    assert host("apply", prof, "--detailed-exitcode").code == 0


def test_detailed_exitcode_keeps_2_for_pending_only(host: SimHost, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npfs:\n  - match: {netdev: enp2s0f0}\n    total-vfs: lots\n")
    assert host("plan", str(bad)).code == 2  # the documented usage exit…
    r = host("plan", str(bad), "--detailed-exitcode", "--json")
    assert r.code == 1 and r.json()["error"]["kind"] == "invalid"  # …is 1 here: 2 means pending
    gone = tmp_path / "gone.yaml"
    gone.write_text("version: 1\npfs:\n  - match: {netdev: nosuch0}\n    total-vfs: 1\n")
    assert host("apply", str(gone), "--check", "--detailed-exitcode").code == 1
    other = host("--root", "/nonexistent", "plan", _profile(tmp_path, "x0"), "--detailed-exitcode")
    assert other.code == 3  # every other documented code is unchanged


def test_drift_lists_each_key(host: SimHost, tmp_path: Path) -> None:
    pf = pf_by_driver(host, "igb")
    prof = _profile(tmp_path, pf["netdev"])
    r = host("drift", prof, "--json")
    assert r.code == 0 and r.json()["drifted"] is True
    keys = {(k["vf"], k["key"]): (k["want"], k["have"]) for k in r.json()["keys"]}
    assert keys == {
        (None, "total-vfs"): (3, 0),
        (1, "mac-address"): ("02:00:00:00:00:21", None),  # the VF does not exist yet
        (1, "vlan-id"): (10, None),
        (2, "driver"): ("vfio-pci", None),
    }
    assert host("apply", prof).code == 0
    clean = host("drift", prof, "--json", "--detailed-exitcode")
    assert clean.code == 0 and clean.json() == {"profile": prof, "drifted": False, "keys": []}
    assert host("set", pf["netdev"], "vf1", "--vlan", "11").code == 0
    assert host("unbind", pf["netdev"], "vf2").code == 0
    d = host("drift", prof, "--json", "--detailed-exitcode")
    assert d.code == 2
    assert [(k["pf"], k["vf"], k["key"], k["want"], k["have"]) for k in d.json()["keys"]] == [
        (pf["address"], 1, "vlan-id", 10, 11),
        (pf["address"], 2, "driver", "vfio-pci", "igbvf"),
    ]
    every = host("drift", prof, "--json", "--all").json()["keys"]
    assert len(every) == 4 and sum(k["drifted"] for k in every) == 2
    text = host("drift", prof)
    assert text.code == 0 and "vlan-id" in text.out and "total-vfs" not in text.out


def test_example_drift_unit_runs_a_valid_check(host: SimHost, tmp_path: Path) -> None:
    """The shipped unit's command line, run against a simulated host: exit 2 on drift."""
    unit = (REPO / "contrib/systemd/vfctl-drift.service").read_text()
    exec_line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert argv[0] == "/usr/bin/vfctl" and "--detailed-exitcode" in argv and "--check" in argv
    assert "SuccessExitStatus=2" in unit
    prof = _profile(tmp_path, pf_by_driver(host, "igb")["netdev"])
    args = [prof if a == "/etc/vfctl/profile.yaml" else a for a in argv[1:]]
    assert host(*args).code == 2
    assert host("apply", prof).code == 0
    assert host(*args).code == 0
    timer = (REPO / "contrib/systemd/vfctl-drift.timer").read_text()
    assert "OnUnitActiveSec=1h" in timer and "WantedBy=timers.target" in timer
