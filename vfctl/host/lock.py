"""One host-wide lock so concurrent vfctl runs (Ansible forks, boot units, admins) serialize."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from vfctl.errors import LockError
from vfctl.host.sysfs import Host

LOCK = "run/lock/vfctl.lock"


@contextmanager
def host_lock(host: Host, wait: float = 30.0) -> Iterator[None]:
    """flock the host's lock file; LockError (exit 7) after ``wait`` seconds."""
    path = host.path(LOCK)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    raise LockError(
                        f"another vfctl run holds {path}{holder}; waited {wait:g}s (--wait)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
