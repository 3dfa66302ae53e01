"""Confirm-or-revert on simulated hosts, with vfctl as real processes (the reverter is one):
no confirm → reverted after the deadline; confirm → kept; the starting shell killed → still
reverted; Enter on a terminal confirms; `vfctl recover` reverts a pending change at once."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simcli import SimHost, pf_by_driver

from vfctl import history
from vfctl.host.open import open_host

PENDING = "run/vfctl/confirm.json"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VFCTL_")}
    return env


def vfctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfctl", "--root", str(root), "--backend", "none", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


def until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll for an outcome (not a speed assertion: the bound is only against hanging)."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.1)


def state(h: SimHost) -> dict[str, Any]:
    doc = h("list", "--json").json()
    devs = sorted(p.name for p in (h.root / "sys/bus/pci/devices").iterdir())
    return {"list": doc, "devices": devs, "drivers": {d: h.driver(d) for d in devs}}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie has finished
    except OSError:
        return False


def last(h: SimHost) -> dict[str, Any]:
    return history.read(open_host(h.root))[-1]


def test_no_confirm_reverts_after_the_deadline(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    before = state(host)
    r = vfctl(host.root, "enable", pf, "3", "--confirm", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    info = doc["confirm"]
    assert info["mechanism"] == "process" and info["history_id"] == doc["history_id"]
    assert doc["changed"] is True and [a["detail"] for a in doc["actions"]] == ["0 -> 3"]
    until(lambda: not host.exists(PENDING))  # (what happens before the deadline: see below)
    until(lambda: not alive(info["pid"]))
    assert state(host) == before
    rec = last(host)
    assert rec["reverts"] == doc["history_id"] and rec["success"] is True
    assert rec["reason"] == "timeout"


def stat_mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_confirm_keeps_the_change_and_stops_the_reverter(host: SimHost, tmp_path: Path) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    prof = tmp_path / "p.yaml"
    prof.write_text(f"version: 1\npfs:\n  - match: {{netdev: {pf}}}\n    total-vfs: 2\n")
    r = vfctl(host.root, "apply", str(prof), "--confirm", "30", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["confirm"]
    kept = state(host)
    c = vfctl(host.root, "confirm", "--json")
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout) == {"confirmed": info["history_id"]}
    assert not host.exists(PENDING)
    until(lambda: not alive(info["pid"]))  # cancelled, not left to wake up
    # a reverter that could not be cancelled (a timer firing anyway) finds nothing to revert
    late = vfctl(host.root, "confirm", "--expire", info["token"])
    assert late.returncode == 0 and late.stdout == ""
    assert state(host) == kept
    assert last(host)["confirms"] == info["history_id"]
    shown = vfctl(host.root, "history", "show", "last", "--json")
    assert json.loads(shown.stdout)["id"] == info["history_id"]  # `last`: the run, not its confirm
    again = vfctl(host.root, "confirm")
    assert again.returncode == 3 and "no change awaits confirmation" in again.stderr


def _spawn_on_terminal(root: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """A shell on a pseudo-terminal running vfctl, in its own process group (as over SSH)."""
    master, slave = pty.openpty()
    cmd = " ".join([sys.executable, "-m", "vfctl", "--root", str(root), "--backend", "none", *args])
    p = subprocess.Popen(
        ["bash", "-c", f"{cmd}; echo shell-done"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(),
        start_new_session=True,
    )
    os.close(slave)
    return p, master


def _read_until(master: int, text: bytes) -> bytes:
    got = b""
    end = time.monotonic() + 60
    while text not in got:
        assert time.monotonic() < end, got
        try:
            got += os.read(master, 4096)
        except OSError:
            break
    return got


def test_killed_shell_still_reverts(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    assert host("enable", pf, "2").code == 0
    before = state(host)
    p, master = _spawn_on_terminal(host.root, "bind", pf, "all", "--confirm", "10")
    try:
        out = _read_until(master, b"Press Enter within")
        assert b"confirm within" in out
        assert host.exists(PENDING) and state(host) != before
        os.killpg(p.pid, signal.SIGHUP)  # the session goes away…
        os.killpg(p.pid, signal.SIGKILL)  # …and whatever is left of it is killed
        p.wait(timeout=30)
    finally:
        os.close(master)
    until(lambda: not host.exists(PENDING))
    assert state(host) == before
    assert last(host)["reason"] == "timeout"


def test_enter_on_the_terminal_confirms(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    p, master = _spawn_on_terminal(host.root, "enable", pf, "2", "--confirm", "30")
    try:
        _read_until(master, b"Press Enter within")
        os.write(master, b"\n")
        out = _read_until(master, b"shell-done")
        assert b"confirmed: the change is kept" in out
        p.wait(timeout=30)
    finally:
        os.close(master)
    assert not host.exists(PENDING)
    assert host("show", pf, "--json").json()["num_vfs"] == 2


def test_recover_reverts_a_pending_change_now(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    before = state(host)
    r = vfctl(host.root, "enable", pf, "4", "--confirm", "600", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["confirm"]
    assert host.exists(PENDING) and stat_mode(host.root / PENDING) == 0o600
    assert state(host) != before
    blocked = vfctl(host.root, "set", pf, "vf0", "--vlan", "3")
    assert blocked.returncode == 4 and "awaits confirmation" in blocked.stderr
    rec = vfctl(host.root, "recover", "--json")
    assert rec.returncode == 0, rec.stderr
    assert [a["detail"] for a in json.loads(rec.stdout)["rolled_back"]] == ["4 -> 0"]
    assert state(host) == before and not host.exists(PENDING)
    assert last(host)["reason"] == "recover"
    until(lambda: not alive(info["pid"]))  # the reverter saw the change is gone and left


def test_bad_confirm_values_change_nothing(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    before = state(host)
    for bad in ("0", "-5", "nan", "100000"):
        r = vfctl(host.root, "enable", pf, "2", "--confirm", bad)
        assert r.returncode == 2, (bad, r.stderr)
    assert state(host) == before and not host.exists(PENDING)


def test_systemd_timer_reverter_command(host: SimHost, tmp_path: Path) -> None:
    """On a systemd host the reverter is `systemd-run --on-active`: check what vfctl asks for
    (a fake systemd-run records it), then fire the recorded command as the timer would."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    for tool in ("systemd-run", "systemctl"):
        (bindir / tool).write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool}" "$@" "--" >> {log}\n')
        (bindir / tool).chmod(0o755)
    pf = pf_by_driver(host, "igb")["netdev"]
    before = state(host)
    env = {
        **_env(),
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "VFCTL_CONFIRM_REVERTER": "systemd",
        "VFCTL_PVE_TOKEN_FILE": "/etc/vfctl/token",
        "VFCTL_PVE_TOKEN_VALUE": "sekrit-value",
    }
    r = subprocess.run(
        [sys.executable, "-m", "vfctl", "--root", str(host.root), "--backend", "none",
         "enable", pf, "2", "--confirm", "5", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["confirm"]
    assert info["mechanism"] == "systemd-timer" and info["unit"] == f"vfctl-confirm-{info['token']}"
    call = log.read_text().split("\n")
    assert call[0] == "systemd-run" and "sekrit-value" not in log.read_text()
    assert f"--unit={info['unit']}" in call and "--on-active=5s" in call
    assert "--setenv=VFCTL_PVE_TOKEN_FILE" in call
    cmd = call[call.index("--") + 1 : call.index("--", call.index("--") + 1)]
    assert cmd[-3:] == ["confirm", "--expire", info["token"]]
    assert cmd[:3] == [sys.executable, "-m", "vfctl"] and str(host.root) in cmd
    fired = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert fired.returncode == 0, fired.stderr  # waits for the deadline, then reverts
    assert state(host) == before and not host.exists(PENDING)
