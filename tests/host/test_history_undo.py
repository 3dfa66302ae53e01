"""History and undo on simulated hosts: every mutating command is recorded, and `vfctl undo`
returns the host to the state before the run (or refuses, exit 4, when the host moved on)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from simcli import SimHost, pf_by_driver

from vfctl import history
from vfctl.host.open import open_host


def state(h: SimHost) -> dict[str, Any]:
    """Everything vfctl can change: the listing (MACs included), devices, drivers."""
    doc = h("list", "--json").json()
    devs = sorted(p.name for p in (h.root / "sys/bus/pci/devices").iterdir())
    return {"list": doc, "devices": devs, "drivers": {d: h.driver(d) for d in devs}}


def without_vf_macs(s: dict[str, Any]) -> dict[str, Any]:
    """A re-created VF's MAC is the driver's random choice (the kernel's too): not comparable."""
    out = json.loads(json.dumps(s))
    for pf in out["list"]["pfs"]:
        for vf in pf["vfs"]:
            vf.pop("mac", None)
    return out


def records(h: SimHost) -> list[dict[str, Any]]:
    return history.read(open_host(h.root))


def _igb(h: SimHost) -> str:
    return str(pf_by_driver(h, "igb")["netdev"])


def _with_vfs(h: SimHost, n: int = 4) -> str:
    pf = _igb(h)
    assert h("enable", pf, str(n)).code == 0
    return pf


def _profile(tmp: Path, pf: str) -> str:
    p = tmp / "p.yaml"
    p.write_text(
        "version: 1\npfs:\n"
        f"  - match: {{netdev: {pf}}}\n    total-vfs: 3\n    vfs:\n"
        "      - id: 0\n        mac-address: 02:00:00:00:10:00\n        trust: true\n"
        "      - id: 2\n        driver: vfio-pci\n"
    )
    return str(p)


# each case: (prepare the host, return the command to undo)
Case = Callable[[SimHost, Path], list[str]]
CASES: dict[str, Case] = {
    "enable": lambda h, _t: ["enable", _igb(h), "4"],
    "enable-through-zero": lambda h, _t: ["enable", _with_vfs(h, 2), "5"],
    "disable": lambda h, _t: (
        h("set", _with_vfs(h), "vf1", "--mac", "02:00:00:00:00:31", "--vlan", "9"),
        h("bind", _igb(h), "vf2"),
        ["disable", _igb(h)],
    )[-1],
    "autoprobe": lambda h, _t: ["enable", _igb(h), "2", "--no-autoprobe"],
    "bind": lambda h, _t: ["bind", _with_vfs(h), "vf0-2"],
    "unbind": lambda h, _t: (h("bind", _with_vfs(h), "all"), ["unbind", _igb(h), "vf1,3"])[-1],
    "set": lambda h, _t: [
        *("set", _with_vfs(h), "vf1", "--mac", "02:00:00:00:00:41", "--vlan", "12"),
        *("--trust", "on", "--spoofchk", "off"),
    ],
    "apply": lambda h, t: ["apply", _profile(t, _with_vfs(h, 2))],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_undo_returns_the_host_to_before_the_run(host: SimHost, tmp_path: Path, name: str) -> None:
    cmd = CASES[name](host, tmp_path)
    before = state(host)
    r = host(*cmd, "--json")
    assert r.code == 0, r.err
    run_id = r.json()["history_id"]
    assert state(host) != before
    rec = records(host)[-1]
    assert rec["id"] == run_id and rec["success"] is True and rec["changed"] is True
    assert rec["keys"], "the record names the keys the run changed"
    assert all(a["undo"] for a in rec["actions"]), "every action carries its inverse"

    u = host("undo", run_id, "--json")
    assert u.code == 0, u.err
    assert u.json()["undoes"] == run_id and u.json()["changed"] is True
    recreated = name in ("disable", "enable-through-zero")
    after = state(host)
    if recreated:
        assert without_vf_macs(after) == without_vf_macs(before)
    else:
        assert after == before
    last = records(host)[-1]
    assert last["undoes"] == run_id and last["success"] is True  # the undo is recorded too


def test_undo_of_the_undo_redoes(host: SimHost) -> None:
    pf = _with_vfs(host)
    run_id = host("set", pf, "vf0", "--vlan", "33", "--json").json()["history_id"]
    done = state(host)
    u = host("undo", run_id, "--json").json()
    assert host("undo", u["history_id"], "--json").code == 0
    assert state(host) == done


def test_drift_refuses_with_exit_4_then_force(host: SimHost) -> None:
    pf = _with_vfs(host)
    run_id = host("set", pf, "vf1", "--vlan", "5", "--json").json()["history_id"]
    assert host("set", pf, "vf1", "--vlan", "6").code == 0  # someone changed it since
    before = state(host)
    r = host("undo", run_id, "--json")
    assert r.code == 4, r.err
    assert "vf1 vlan: run left 5, now 6" in r.err and "--force" in r.err
    assert state(host) == before  # refused: nothing changed
    f = host("undo", run_id, "--force", "--json")
    assert f.code == 0, f.err
    assert f.json()["drifted"] == [{"pf": pf_by_driver(host, "igb")["address"], "vf": 1,
                                    "key": "vlan", "want": 5, "have": 6}]  # fmt: skip
    assert host("show", pf, "--json").json()["vfs"][1]["vlan"] == 0


def test_undo_check_changes_nothing_and_unknown_ids(host: SimHost) -> None:
    pf = _with_vfs(host)
    run_id = host("set", pf, "vf0", "--vlan", "7", "--json").json()["history_id"]
    before, n = state(host), len(records(host))
    r = host("undo", run_id[:-1], "--check", "--json")  # a unique prefix
    assert r.code == 0 and r.json()["changed"] is True
    assert [a["detail"] for a in r.json()["actions"]] == [
        "vlan=7,qos=0,vlan_proto=802.1Q -> vlan=0,qos=0,vlan_proto=802.1Q"
    ]
    assert state(host) == before and len(records(host)) == n  # --check is not recorded
    assert host("undo", "19990101-000000-abcd").code == 3
    assert host("undo", "../etc").code == 2
    assert host("history", "show", "nope").code == 3


def test_failed_run_is_recorded_rolled_back_and_not_undoable(host: SimHost) -> None:
    pf = _with_vfs(host)
    addr = pf_by_driver(host, "igb")["address"]
    host.faults([{"path": f"netlink/{pf}/vf1/trust", "errno": "EIO"}])
    r = host("set", pf, "vf1", "--vlan", "8", "--trust", "on", "--json")
    assert r.code == 5
    rec = records(host)[-1]
    assert rec["success"] is False and rec["changed"] is False and rec["error"]["kind"] == "host"
    assert rec["rolled_back"] and rec["keys"] == []  # rolled back: nothing left changed
    host.faults([])
    u = host("undo", rec["id"], "--json")
    assert u.code == 0 and u.json()["actions"] == []
    assert f"{addr} vf1" not in json.dumps(u.json())


def test_history_lists_and_shows(host: SimHost) -> None:
    pf = _with_vfs(host)
    host("set", pf, "vf0", "--vlan", "3")
    host("enable", pf, "4")  # a no-op run is recorded too (it is when the host was checked)
    runs = host("history", "--json").json()["runs"]
    assert [r["changed"] for r in runs] == [True, True, False]
    assert runs[-1]["actions"] == 0 and runs[0]["user"]
    assert len(host("history", "-n", "1", "--json").json()["runs"]) == 1
    shown = host("history", "show", runs[1]["id"], "--json").json()
    assert {k["name"]: (k["before"], k["after"]) for k in shown["keys"]} == {
        f"{pf_by_driver(host, 'igb')['address']} vf0 vlan": (0, 3)
    }
    text = host("history", "show", "last")
    assert text.code == 0 and runs[-1]["id"] in text.out


def test_history_file_is_private_and_never_followed(host: SimHost, tmp_path: Path) -> None:
    pf = _with_vfs(host)
    d = host.root / "var/lib/vfctl"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "history.jsonl").stat().st_mode) == 0o600
    (d / "history.jsonl").unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (d / "history.jsonl").symlink_to(victim)
    r = host("set", pf, "vf0", "--vlan", "4", "--json")
    assert r.code == 0  # the run happened; only its record is refused
    assert any("history not recorded" in w and "symlink" in w for w in r.json()["warnings"])
    assert victim.read_text() == "precious\n"
    assert host("history").code == 4  # refused, as the lock's directory (docs/engine.md)
    (d / "history.jsonl").unlink()
    os.mkfifo(d / "history.jsonl")  # a FIFO would block a naive open
    assert host("history").code == 4


def test_history_dir_of_another_user_or_a_symlink_is_refused(host: SimHost, tmp_path: Path) -> None:
    """One opener (statedir.open_private_dir) for the lock's and the history's directory."""
    pf = _with_vfs(host)
    d = host.root / "var/lib/vfctl"
    before = (d / "history.jsonl").read_bytes()
    if os.geteuid() == 0:  # only root can give a directory away
        os.chown(d, 65534, 65534)
        r = host("history")
        assert r.code == 4 and f"{d} is owned by uid 65534" in r.err, r.err
        r = host("set", pf, "vf0", "--vlan", "5", "--json")
        assert r.code == 0  # the run stands; its record is refused, not written there
        assert any("history not recorded" in w and "65534" in w for w in r.json()["warnings"])
        assert (d / "history.jsonl").read_bytes() == before
        os.chown(d, 0, 0)
    elsewhere = tmp_path / "elsewhere"
    d.rename(elsewhere)
    d.symlink_to(elsewhere)
    r = host("history")
    assert r.code == 4 and "is a symlink" in r.err and "run history" in r.err, r.err
    assert host("set", pf, "vf0", "--vlan", "6").code == 0
    assert (elsewhere / "history.jsonl").read_bytes() == before


def test_rotation_keeps_one_old_file_and_reads_both(tmp_path: Path) -> None:
    h = open_host(tmp_path)
    for i in range(40):
        history.append(h, {"id": f"r{i:02d}", "pad": "x" * 100}, cap=1000)
    d = tmp_path / history.DIR
    assert (d / history.OLD).exists()
    assert (d / history.NAME).stat().st_size <= 1000
    ids = [r["id"] for r in history.read(h)]
    assert ids == sorted(ids) and ids[-1] == "r39" and len(ids) < 40
    (d / history.NAME).write_bytes((d / history.NAME).read_bytes() + b'{"id": "torn')
    assert history.read(h)[-1]["id"] == "r39"  # a torn last line is skipped


def test_argv_secrets_are_removed() -> None:
    argv = [
        "--pve-token", "s3cret", "--token-value=abc", "apply", "p.yaml",
        "--libvirt-uri", "qemu+ssh://root:hunter2@host/system",
        "PVE_TOKEN_VALUE=zzz", "user@pam!vfctl=01234567-89ab-cdef-0123-456789abcdef",
    ]  # fmt: skip
    out = history.redact_argv(argv)
    text = " ".join(out)
    for secret in ("s3cret", "abc", "hunter2", "zzz", "01234567-89ab"):
        assert secret not in text
    assert out[:5] == ["--pve-token", "***", "--token-value=***", "apply", "p.yaml"]


def test_via_says_who_ran_it(host: SimHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from vfctl import persist

    assert "Environment=VFCTL_VIA=boot" in persist.unit_text("/usr/bin/vfctl")
    pf = _igb(host)
    monkeypatch.setenv("VFCTL_VIA", "ansible")
    assert host("enable", pf, "1").code == 0
    monkeypatch.delenv("VFCTL_VIA")
    assert host("enable", pf, "2").code == 0
    assert [r["via"] for r in records(host)] == ["ansible", "cli"]
