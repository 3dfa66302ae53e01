"""The host lock and the journal live in a private state directory and cannot be hijacked:
planted symlinks, FIFOs, directories, foreign owners and damaged journals are refused (exit 4)
with one line that says what to do; nothing is followed, truncated or deleted."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl import plan
from vfctl.host import lock
from vfctl.host.open import open_host

PF = "enp2s0f0"
STATE = "run/vfctl"
JOURNAL = f"{STATE}/journal.json"


def _one_line_refusal(h: SimHost, *args: str) -> str:
    before = h.writes()
    r = h(*args, "--json")
    assert r.code == 4, (r.code, r.err)
    assert json.loads(r.out)["error"]["kind"] == "refused"  # one document
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfctl: error: ") and "Traceback" not in r.err
    assert h.writes() == before  # nothing changed on the host
    return lines[0]


def test_state_dir_lock_and_journal_modes(host: SimHost) -> None:
    host.faults([{"path": "*/sriov_numvfs", "errno": "EIO", "times": None}])
    host.faults([])
    assert host("enable", PF, "2").code == 0
    d = host.root / STATE
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "lock").stat().st_mode) == 0o600
    assert not (host.root / "run/lock/vfctl.lock").exists()  # not in world-writable /run/lock


@pytest.mark.parametrize("kind", ["symlink", "dangling", "directory", "fifo"])
def test_odd_lock_path_is_refused_and_never_followed(
    host: SimHost, kind: str, tmp_path: Path
) -> None:
    d = host.root / STATE
    d.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    if kind == "symlink":
        (d / "lock").symlink_to(victim)
    elif kind == "dangling":
        (d / "lock").symlink_to(tmp_path / "nowhere")
    elif kind == "directory":
        (d / "lock").mkdir()
    else:
        os.mkfifo(d / "lock")
    line = _one_line_refusal(host, "enable", PF, "2")
    assert f"{d}/lock is" in line and "remove it" in line
    assert victim.read_text() == "precious\n" and not (tmp_path / "nowhere").exists()


def test_state_dir_symlink_or_foreign_owner_is_refused(host: SimHost, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (host.root / "run").mkdir()
    (host.root / STATE).symlink_to(elsewhere)
    assert "is a symlink" in _one_line_refusal(host, "enable", PF, "2")
    assert os.listdir(elsewhere) == []
    if os.geteuid() != 0:
        return  # only root can give a directory away
    (host.root / STATE).unlink()
    (host.root / STATE).mkdir(mode=0o700)
    os.chown(host.root / STATE, 65534, 65534)
    assert "owned by uid 65534" in _one_line_refusal(host, "recover")


def test_older_open_state_dir_is_tightened(host: SimHost) -> None:
    (host.root / STATE).mkdir(parents=True, mode=0o755)
    os.chmod(host.root / STATE, 0o755)
    assert host("enable", PF, "1").code == 0
    assert stat.S_IMODE((host.root / STATE).stat().st_mode) == 0o700


def test_lock_holder_is_the_kernels_not_the_files(host: SimHost) -> None:
    """The pid in the file may be stale or forged; /proc/locks names the real holder."""
    d = host.root / STATE
    d.mkdir(parents=True, mode=0o700)
    (d / "lock").write_text("    424242\n")
    os.chmod(d / "lock", 0o600)
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(d / "lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        r = host("enable", PF, "2", "--wait", "0.1")
        assert r.code == 7 and f"(pid {child.pid}, python" in r.err and "424242" not in r.err
    finally:
        child.kill()
        child.wait()
    with open(d / "lock", "rb") as f:
        assert lock.holder(f.fileno()) == ""  # nobody holds it now


# ---------------------------------------------------------------- the journal


def _journal(h: SimHost, text: str) -> Path:
    d = h.root / STATE
    d.mkdir(parents=True, mode=0o700, exist_ok=True)
    p = d / "journal.json"
    p.write_text(text)
    os.chmod(p, 0o600)
    return p


def test_stale_journal_with_a_live_pid_is_stale_under_the_lock(host: SimHost) -> None:
    """pid 1 is alive, but whoever holds the host lock knows the journal's writer is gone —
    even on a host vfctl cannot tell is simulated."""
    real = host.root.parent / "notsim"
    shutil.copytree(host.root, real, symlinks=True)
    shutil.rmtree(real / ".vfctl-sim")
    rec = {"pid": 1, "started": 0, "actions": [], "done": 0}
    p = _journal(SimHost(real), json.dumps(rec))
    assert plan.pending_journal(open_host(real)) == rec
    r = SimHost(real)("enable", PF, "2")
    assert r.code == 4 and "vfctl recover" in r.err
    assert json.loads(p.read_text()) == rec


@pytest.mark.parametrize(
    "text",
    ['{"pid": 1, "actions": [{"op": "sysfs.wr', "[]", '{"actions": 5, "done": 0}',
     '{"actions": [{"op": 1, "target": "x", "detail": "y"}], "done": 0}',
     '{"actions": [], "done": 3}', '{"actions": [], "done": 0, "before": {"pfs": 7}}',
     "\xff\xfe"],
    ids=["truncated", "list", "actions-int", "op-int", "done-out-of-range", "before", "binary"],
)
def test_damaged_journal_is_kept_and_refused(host: SimHost, text: str) -> None:
    p = _journal(host, text)
    for cmd in (("recover",), ("enable", PF, "2"), ("bind", PF, "vf0")):
        line = _one_line_refusal(host, *cmd)
        assert f"{p}" in line and "cannot be read" in line and "delete the file" in line
    assert p.read_text() == text


def test_journal_symlink_is_not_followed(host: SimHost, tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"pid": 1, "actions": [], "done": 0}))
    (host.root / STATE).mkdir(parents=True, mode=0o700)
    (host.root / JOURNAL).symlink_to(victim)
    assert "is a symlink" in _one_line_refusal(host, "recover")
    assert victim.exists()


def test_planted_temp_file_symlink_is_not_followed(host: SimHost, tmp_path: Path) -> None:
    """Journal writes go to a fresh O_EXCL temp file: a symlink at the old fixed temp name
    (or any other) is never written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (host.root / STATE).mkdir(parents=True, mode=0o700)
    (host.root / STATE / "journal.tmp").symlink_to(victim)
    assert host("enable", PF, "2").code == 0
    assert victim.read_text() == "precious\n"


def test_kept_journal_is_private(host: SimHost) -> None:
    assert host("enable", PF, "2").code == 0
    host.faults([{"path": "sys/bus/pci/drivers_probe", "errno": "EIO", "times": None}])
    r = host("bind", PF, "vf0")
    assert r.code == 5 and "INCOMPLETE" in r.err  # the undo fails too: the journal is kept
    p = host.root / JOURNAL
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert json.loads(p.read_text())["root"] == str(host.root.resolve())
    assert [n for n in os.listdir(host.root / STATE) if n not in ("lock", "journal.json")] == []


def test_recover_json_prints_exactly_one_document(host: SimHost) -> None:
    rec = {"pid": 1, "started": 0, "done": 1, "actions": [
        {"op": "sysfs.write", "target": "t", "detail": "d", "params": {},
         "undo": {"op": "sysfs.write", "target": "t", "detail": "undo",
                  "params": {"path": "sys/nonexistent", "value": "1"}, "undo": None}}]}  # fmt: skip
    _journal(host, json.dumps(rec))
    r = host("recover", "--json")
    assert r.code == 5
    doc = json.loads(r.out)  # one document, not two
    assert doc["error"]["kind"] == "host" and doc["changed"] is False
    assert "recover incomplete" in doc["error"]["message"]


def test_relative_root_gives_absolute_paths(host: SimHost, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _journal(host, "[]")
    monkeypatch.chdir(host.root.parent)
    rel = SimHost(Path(host.root.name))
    r = rel("recover")
    assert r.code == 4 and f"{p.resolve()}" in r.err


def test_lock_is_released_by_kill(host: SimHost) -> None:
    """A killed holder releases the flock: the next run does not wait for a dead pid."""
    d = host.root / STATE
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from vfctl.host.open import open_host; from vfctl.host.lock import host_lock\n"
         "with host_lock(open_host(sys.argv[1])):\n print('held', flush=True); input()",
         str(host.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    with open(d / "lock", "rb") as f:
        assert lock.holder(f.fileno()).startswith(f" (pid {child.pid}, python")
    child.kill()
    child.wait()
    assert host("enable", PF, "1", "--wait", "0").code == 0
    with open(d / "lock", "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free


def test_engine_never_overwrites_a_killed_runs_journal(host: SimHost) -> None:
    """Every path into the engine (commands, the confirm reverter, profiles) refuses while a
    killed run's journal is there, instead of writing its own over it."""
    rec = {"pid": 1, "started": 0, "actions": [], "done": 0}
    p = _journal(host, json.dumps(rec))
    act = plan.Action("sysfs.write", "x", "y", {"path": "sys/nonexistent", "value": "1"})
    with pytest.raises(plan.RefusedError, match="vfctl recover"):
        plan.execute(plan.Context(open_host(host.root)), [act])
    assert json.loads(p.read_text()) == rec
