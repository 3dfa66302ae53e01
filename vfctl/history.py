"""What every mutating run did, kept in ``/var/lib/vfctl/history.jsonl`` so it can be undone.

One JSON line per run: who, when, the argv (secrets removed), the profile and its sha256, the
actions with their inverses, the result, and the host's value before and after the run for
every key the run changed. The file is root-only, never followed through a symlink, and
rotated once past a size cap, so a busy Ansible loop cannot fill ``/var``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from vfctl.errors import NotFoundError, UsageError, VfctlError
from vfctl.host import statedir
from vfctl.host.sysfs import Host
from vfctl.model import HostModel
from vfctl.plan import ExecutionFailed, Result

DIR = "var/lib/vfctl"
NAME = "history.jsonl"
OLD = "history.jsonl.1"
CAP = 4 << 20  # rotate the file once it grows past this many bytes; one older file is kept
MAX_READ = 2 * CAP + (1 << 20)  # never read more than the two files can legitimately hold

# ---------------------------------------------------------------- the record's contents

_SECRET_OPT = re.compile(r"(token|secret|passw(or)?d|api[-_]?key|credential)", re.I)
_URL_PASS = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")
_PVE_TOKEN = re.compile(r"(![\w.-]+=)[0-9a-fA-F-]{8,}")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret-looking options and URL passwords replaced by ``***``."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        if arg.startswith("-") and _SECRET_OPT.search(arg.split("=", 1)[0]):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        if "=" in arg and _SECRET_OPT.search(arg.split("=", 1)[0]):  # VAR=value forms
            out.append(arg.split("=", 1)[0] + "=***")
            continue
        out.append(_PVE_TOKEN.sub(r"\1***", _URL_PASS.sub(r"\1***@", arg)))
    return out


def who() -> str:
    """The person behind the run: SUDO_USER when root was reached through sudo."""
    sudo = os.environ.get("SUDO_USER")
    if sudo:
        return sudo
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return str(os.geteuid())


def new_id(now: float) -> str:
    """Sortable and short enough to type: ``20261130-105800-3f2a``."""
    stamp = _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def file_sha256(path: str) -> str | None:
    """sha256 of a profile file, or None when it cannot be read (stdin, vanished)."""
    if path == "-":
        return None
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        while chunk := f.read(1 << 16):
            h.update(chunk)
    return h.hexdigest()


def facts(m: HostModel) -> dict[str, Any]:
    """Every value a run can change, flat: ``"<pf> num_vfs"``, ``"<pf> vf3 mac"``, …

    Keys of a VF that does not exist are absent; :func:`changed_keys` reads them as None.
    """
    out: dict[str, Any] = {}
    for pf in m.pfs:
        out[f"{pf.address} num_vfs"] = pf.num_vfs
        out[f"{pf.address} autoprobe"] = pf.autoprobe
        for v in pf.vfs:
            k = f"{pf.address} vf{v.index}"
            out[f"{k} address"] = v.address
            out[f"{k} driver"] = v.driver
            out[f"{k} driver_override"] = v.driver_override
            for name, val in v.settings.to_json().items():
                out[f"{k} {name}"] = val.lower() if isinstance(val, str) else val
            out[f"{k} attached_to"] = sorted(f"{a.backend}:{a.vm}" for a in v.attached_to)
    return out


def split_key(key: str) -> dict[str, Any]:
    """``"<pf> vf3 mac"`` → ``{"pf": …, "vf": 3, "key": "mac"}`` (vf None for PF keys)."""
    parts = key.split(" ")
    if len(parts) == 3 and parts[1].startswith("vf") and parts[1][2:].isdigit():
        return {"pf": parts[0], "vf": int(parts[1][2:]), "key": parts[2]}
    return {"pf": parts[0], "vf": None, "key": " ".join(parts[1:])}


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The keys whose value differs, each with its before and after value."""
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b != a:
            out.append({**split_key(key), "name": key, "before": b, "after": a})
    return out


# ---------------------------------------------------------------- the file


@contextlib.contextmanager
def _dir_fd(host: Host, create: bool) -> Iterator[int | None]:
    """The history directory, checked as the lock's (statedir: 0700, ours, never a symlink)."""
    fd = statedir.open_private_dir(host, DIR, create, "run history")
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _open(host: Host, dir_fd: int, name: str, flags: int) -> int:
    """A regular file of ours in the history directory, never through a symlink (statedir)."""
    fd = statedir.open_file(dir_fd, name, os.path.abspath(host.path(f"{DIR}/{name}")), flags)
    if flags & os.O_WRONLY and stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
        os.fchmod(fd, 0o600)
    return fd


def append(host: Host, record: Mapping[str, Any], cap: int = CAP) -> None:
    """Add one record (one line); rotate first when the file would grow past ``cap``."""
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    with _dir_fd(host, create=True) as dfd:
        assert dfd is not None
        fd = _open(host, dfd, NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and size + len(line) > cap:
                os.replace(NAME, OLD, src_dir_fd=dfd, dst_dir_fd=dfd)
                os.close(fd)
                fd = _open(host, dfd, NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_file(host: Host, dfd: int, name: str) -> list[dict[str, Any]]:
    try:
        fd = _open(host, dfd, name, os.O_RDONLY)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_READ)
    out = []
    for raw in data.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # a torn last line (a run killed mid-write) or damage: skip it
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            out.append(rec)
    return out


def read(host: Host) -> list[dict[str, Any]]:
    """All records, oldest first (the rotated file, then the current one)."""
    with _dir_fd(host, create=False) as dfd:
        if dfd is None:
            return []
        return _read_file(host, dfd, OLD) + _read_file(host, dfd, NAME)


def find(host: Host, ident: str) -> dict[str, Any]:
    """One record by id, a unique prefix of one, or ``last``; NotFoundError (exit 3) if none."""
    if not ident or not re.fullmatch(r"[0-9A-Za-z-]{1,40}", ident):
        raise UsageError(f"invalid history id {ident!r}")
    recs = read(host)
    if ident == "last":  # the last run, not the line a `vfctl confirm` adds after it
        runs = [r for r in recs if not r.get("confirms")]
        if not runs:
            raise NotFoundError("the history is empty")
        return runs[-1]
    hits = [r for r in recs if r["id"] == ident] or [r for r in recs if r["id"].startswith(ident)]
    if not hits:
        raise NotFoundError(f"no run {ident!r} in the history ({host.path(DIR)}/{NAME})")
    if len({r["id"] for r in hits}) > 1:
        raise UsageError(
            f"history id {ident!r} is ambiguous: {', '.join(r['id'] for r in hits[:5])}"
        )
    return hits[-1]


# ---------------------------------------------------------------- recording a run


def record_of(
    res: Result,
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    started: float,
) -> dict[str, Any]:
    """The history record of a finished (or rolled-back) run."""
    rec: dict[str, Any] = {
        "id": new_id(started),
        "time": started,
        "duration": round(time.time() - started, 3),
        "user": who(),
        "uid": os.geteuid(),
        "via": os.environ.get("VFCTL_VIA") or "cli",
        "argv": redact_argv(fields.get("argv") or []),
    }
    rec.update({k: v for k, v in fields.items() if k != "argv"})
    rec.update(
        {
            "changed": res.changed,
            "success": res.error is None,
            "error": None
            if res.error is None
            else {"kind": res.error.kind, "message": res.error.message},
            "actions": [a.to_record() for a in res.actions],
            "rolled_back": [a.to_json() for a in res.rolled_back],
            "keys": changed_keys(before, after) if after is not None else None,
        }
    )
    return rec


def run_recorded(
    host: Host,
    before: HostModel,
    run: Callable[[], Result],
    after: Callable[[], HostModel],
    fields: Mapping[str, Any],
) -> Result:
    """Run a plan and append its record, success or failure; a record that cannot be written
    costs a warning, never the run (the host has changed either way)."""
    started = time.time()
    b = facts(before)
    try:
        res = run()
    except ExecutionFailed as e:
        _write(host, e.result, b, after, fields, started)
        raise
    _write(host, res, b, after, fields, started)
    return res


def _write(
    host: Host,
    res: Result,
    before: Mapping[str, Any],
    after: Callable[[], HostModel],
    fields: Mapping[str, Any],
    started: float,
) -> None:
    try:
        a: dict[str, Any] | None = facts(after())
    except Exception as e:  # the run is over; a failed re-read must not hide its result
        a = None
        res.warnings.append(f"history: host not re-read after the run ({e})")
    rec = record_of(res, before, a, fields, started)
    try:
        append(host, rec)
    except (OSError, VfctlError) as e:
        msg = e.message if isinstance(e, VfctlError) else os.strerror(e.errno or 0)
        res.warnings.append(f"history not recorded: {msg}")
        return
    if res.changed:  # the id to undo; a no-op or rolled-back run is recorded, not offered
        res.extra["history_id"] = rec["id"]
