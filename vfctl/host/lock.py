"""One host-wide lock so concurrent vfctl runs (Ansible forks, boot units, admins) serialize.

The lock file is ``/run/vfctl/lock`` in vfctl's private state directory (see statedir):
nobody but root can open it, so nobody else can hold it. Its content (the holder's pid) is
informational; who really holds it is read from the kernel (``/proc/locks``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from vfctl.errors import LockError
from vfctl.host import statedir
from vfctl.host.sysfs import Host

LOCK = "lock"


@contextmanager
def host_lock(host: Host, wait: float = 30.0) -> Iterator[None]:
    """flock the host's lock file; LockError (exit 7) after ``wait`` seconds."""
    dirfd = statedir.open_dir(host)
    assert dirfd is not None
    path = statedir.location(host, LOCK)
    try:
        fd = statedir.open_file(dirfd, LOCK, path, os.O_RDWR | os.O_CREAT)
    finally:
        os.close(dirfd)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"another vfctl run holds {path}{holder(fd)}; waited {wait:g}s (--wait)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        # fixed width, written in place: the file is ours (checked), and never truncated
        os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def holder(fd: int, proc_locks: str = "/proc/locks") -> str:
    """`` (pid N, comm)`` of the process the kernel says holds the flock on ``fd``'s file.

    /proc/locks lines are ``N: FLOCK  ADVISORY  WRITE <pid> <maj>:<min>:<inode> 0 EOF`` with
    major/minor in hex (linux fs/locks.c, lock_get_status()); waiters carry a ``->`` marker.
    """
    st = os.fstat(fd)
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open(proc_locks, encoding="ascii", errors="replace") as f:
            lines = f.read(1 << 22).splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if "->" in fields or "FLOCK" not in fields:
            continue
        i = fields.index("FLOCK")
        if len(fields) > i + 4 and fields[i + 4] == want and fields[i + 3].isdigit():
            pid = fields[i + 3]
            try:
                with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                    comm = f.read(64).strip()
            except OSError:
                comm = ""
            return f" (pid {pid}{', ' + comm if comm else ''})"
    return ""
