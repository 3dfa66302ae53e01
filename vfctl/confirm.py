"""Confirm-or-revert: a change made with ``--confirm SECONDS`` is undone unless confirmed.

The pending change lives in ``/run/vfctl/confirm.json`` (under ``--root``) next to the journal:
its actions with their inverses, a random token and the deadline. A separate *reverter* waits
for the deadline and reverts the change if the same token is still pending; ``vfctl confirm``
removes the file under the host lock, so a reverter that wakes after it finds nothing to do.
The file, not the timer, is the truth: cancelling the reverter is tidiness, not safety.

The reverter is a transient systemd timer (``systemd-run --on-active``) on a real host with
systemd as PID 1, because only that survives the SSH session's cgroup being killed
(logind's ``KillUserProcesses=yes``, ``loginctl terminate-session``) and vfctl itself
crashing; elsewhere (containers without systemd, simulated hosts) a detached process in its
own session, which survives the terminal hanging up (no controlling tty, no SIGHUP).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from vfctl.errors import RefusedError, UsageError
from vfctl.host import statedir
from vfctl.host.sysfs import Host
from vfctl.plan import Result

NAME = "confirm.json"  # in vfctl's private state directory, next to the journal
PENDING = f"{statedir.STATE_DIR}/{NAME}"
MAX_SECONDS = 24 * 3600
# environment a systemd timer may carry: names only, and never a secret's value
_PASS_ENV = (
    "VFCTL_PVE_HOST", "VFCTL_PVE_USER", "VFCTL_PVE_TOKEN_NAME", "VFCTL_PVE_TOKEN_FILE",
    "VFCTL_PVE_NODE", "VFCTL_PVE_TIMEOUT", "VFCTL_LIBVIRT_URI", "VFCTL_BACKEND",
)  # fmt: skip


def check_seconds(seconds: float) -> float:
    if not (math.isfinite(seconds) and 1 <= seconds <= MAX_SECONDS):
        raise UsageError(f"invalid --confirm {seconds:g}: 1 to {MAX_SECONDS} seconds")
    return seconds


def load(host: Host) -> dict[str, Any] | None:
    """The pending change, or None. A damaged file still blocks (and can be reverted)."""
    dirfd = statedir.open_dir(host, create=False)
    if dirfd is None:
        return None
    try:
        raw = statedir.read(dirfd, NAME, statedir.location(host, NAME))
    finally:
        os.close(dirfd)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("token"), str):
            return data
    except ValueError:
        pass
    return {"token": "", "deadline": 0, "actions": [], "corrupt": True}


def _save(host: Host, data: Mapping[str, Any]) -> None:
    dirfd = statedir.open_dir(host)
    assert dirfd is not None
    try:
        statedir.write(dirfd, NAME, json.dumps(data).encode())
    finally:
        os.close(dirfd)


def clear(host: Host) -> None:
    dirfd = statedir.open_dir(host, create=False)
    if dirfd is None:
        return
    try:
        statedir.remove(dirfd, NAME)
    finally:
        os.close(dirfd)


def refuse_if_pending(host: Host) -> None:
    """Another change on top of an unconfirmed one would make its revert wrong: exit 4."""
    p = load(host)
    if p is None:
        return
    left = max(0, int(p.get("deadline", 0) - time.time()))
    raise RefusedError(
        f"run {p.get('history_id') or '?'} awaits confirmation ({left} s left): "
        "`vfctl confirm` keeps it, `vfctl recover` reverts it now"
    )


def systemd_usable(host: Host) -> bool:
    """A transient timer only on the real root with systemd as PID 1 and root privileges."""
    forced = os.environ.get("VFCTL_CONFIRM_REVERTER")
    if forced in ("systemd", "process"):
        return forced == "systemd"
    return (
        str(host.root) == "/"
        and os.geteuid() == 0
        and os.path.isdir("/run/systemd/system")
        and shutil.which("systemd-run") is not None
    )


def _command(global_argv: Sequence[str], token: str) -> list[str]:
    return [sys.executable, "-m", "vfctl", *global_argv, "confirm", "--expire", token]


def arm(host: Host, res: Result, seconds: float, global_argv: Sequence[str]) -> dict[str, Any]:
    """Keep the applied actions as pending and start the reverter; returns what JSON shows."""
    token = secrets.token_hex(8)
    now = time.time()
    info: dict[str, Any] = {
        "token": token,
        "history_id": res.extra.get("history_id"),
        "armed": now,
        "deadline": now + seconds,
        "seconds": seconds,
    }
    data = {**info, "actions": [a.to_record() for a in res.actions]}
    _save(host, data)  # first the file: a reverter that starts finds it
    cmd = _command(global_argv, token)
    try:
        if systemd_usable(host):
            unit = f"vfctl-confirm-{token}"
            env = [f"--setenv={k}" for k in _PASS_ENV if k in os.environ]
            subprocess.run(
                ["systemd-run", "--quiet", "--collect", f"--unit={unit}",
                 f"--on-active={max(1, math.ceil(seconds))}s",
                 "--timer-property=AccuracySec=1s", *env, "--", *cmd],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            info.update(mechanism="systemd-timer", unit=unit)
        else:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
            info.update(mechanism="process", pid=proc.pid)
    except (OSError, subprocess.SubprocessError) as e:
        # no reverter, no safety net: say so, and leave the change pending for `recover`
        res.warnings.append(f"confirm: reverter not started ({e}); run `vfctl recover` to revert")
        info["mechanism"] = None
    _save(host, {**data, **info})
    return info


def cancel(pending: Mapping[str, Any]) -> None:
    """Stop the reverter of a confirmed change (it would find nothing to do anyway)."""
    if pending.get("mechanism") == "systemd-timer" and pending.get("unit"):
        unit = str(pending["unit"])
        subprocess.run(
            ["systemctl", "stop", f"{unit}.timer", f"{unit}.service"],
            check=False, capture_output=True, timeout=30,
        )  # fmt: skip
    elif pending.get("mechanism") == "process" and isinstance(pending.get("pid"), int):
        pid = int(pending["pid"])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                mine = str(pending.get("token", "")).encode() in f.read()
        except OSError:
            return
        if mine:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)


def wait_for_deadline(host: Host, token: str) -> bool:
    """Sleep until the deadline; False as soon as the change is confirmed or replaced."""
    while True:
        p = load(host)
        if p is None or p.get("token") != token:
            return False
        left = float(p.get("deadline", 0)) - time.time()
        if left <= 0:
            return True
        time.sleep(min(left, 1.0))


def countdown(deadline: float) -> str:
    """On a terminal, like `netplan try`: Enter keeps the change, Ctrl-C reverts it now.

    Returns ``confirmed``, ``timeout``, ``interrupted`` or ``detached`` (no terminal, or it
    went away: the reverter decides).
    """
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return "detached"
    try:
        while True:
            left = deadline - time.time()
            if left <= 0:
                sys.stderr.write("\n")
                return "timeout"
            sys.stderr.write(
                f"\rPress Enter within {math.ceil(left):3d} s to keep this change "
                "(Ctrl-C reverts it now) "
            )
            sys.stderr.flush()
            ready, _, _ = select.select([sys.stdin], [], [], min(1.0, left))
            if ready:
                sys.stderr.write("\n")
                return "confirmed" if sys.stdin.readline() else "detached"
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return "interrupted"
