"""vfctl's private directories under the host root: ``/run/vfctl`` (the lock and the journal)
and ``/var/lib/vfctl`` (the run history, see vfctl.history); one opener checks both.

Why a directory of its own: ``/run/lock`` is world-writable, so anyone could plant a symlink
(root would then truncate its target), a FIFO, or hold the lock and block every root run.
This directory is created with mode 0700 and must be owned by the user running vfctl (root);
every file in it is opened relative to the directory's descriptor with ``O_NOFOLLOW``, new
files with ``O_EXCL`` and mode 0600, and replaced by ``rename`` — never truncated in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from vfctl.errors import RefusedError
from vfctl.host.sysfs import Host

STATE_DIR = "run/vfctl"
MAX_FILE = 16 << 20  # a journal of a huge plan is a few MiB; more is not ours
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def location(host: Host, name: str = "") -> str:
    """Absolute path of the state directory (or of a file in it), for messages and docs."""
    p = os.path.abspath(host.path(STATE_DIR))
    return os.path.join(p, name) if name else p


def open_dir(host: Host, create: bool = True) -> int | None:
    """A descriptor of the checked state directory; None when absent and ``create`` is False."""
    return open_private_dir(host, STATE_DIR, create, "lock and journal")


def open_private_dir(host: Host, rel: str, create: bool, what: str) -> int | None:
    """A descriptor of one of vfctl's 0700 directories (``rel`` under the root), created if
    asked; a symlink, a non-directory or another user's directory is refused (exit 4)."""
    path = os.path.abspath(host.path(rel))
    if create:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as e:
        link = e.errno == errno.ELOOP or os.path.islink(path)
        os_kind = "a symlink" if link else "not a directory"
        raise RefusedError(
            f"{path} is {os_kind}: vfctl keeps its {what} in a private directory "
            "there; remove it and run again"
        ) from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise RefusedError(
                f"{path} is owned by uid {st.st_uid}, not by uid {os.geteuid()} running vfctl: "
                f"someone else may control the {what}; remove it and run again"
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o700)  # ours, made by an older vfctl with mode 0755: tighten it
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_file(fd: int, path: str) -> os.stat_result:
    """Refuse anything in the state directory that is not a regular file vfctl's user owns."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RefusedError(f"{path} is not a regular file: remove it and run again")
    if st.st_uid != os.geteuid():
        raise RefusedError(f"{path} is owned by uid {st.st_uid}: remove it and run again")
    return st


def _refuse_open(e: OSError, path: str) -> RefusedError:
    why = {
        errno.ELOOP: "a symlink",
        errno.EISDIR: "a directory",
        errno.ENXIO: "a socket or device",
    }.get(e.errno or 0, os.strerror(e.errno or 0))
    return RefusedError(f"{path} is {why}, not a file vfctl wrote: remove it and run again")


def open_file(dirfd: int, name: str, path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``name`` in the state directory without following links; refuse odd file types."""
    try:
        fd = os.open(name, flags | _NOFOLLOW, mode, dir_fd=dirfd)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _refuse_open(e, path) from None
    try:
        check_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(dirfd: int, name: str, path: str) -> bytes | None:
    """A state file's bytes (None when absent): a regular file of ours, at most MAX_FILE."""
    try:
        fd = open_file(dirfd, name, path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_size > MAX_FILE:
            raise RefusedError(f"{path} is larger than {MAX_FILE >> 20} MiB: not a vfctl file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_FILE:
                raise RefusedError(f"{path} is larger than {MAX_FILE >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write(dirfd: int, name: str, data: bytes) -> None:
    """Replace ``name`` atomically: a fresh 0600 temp file (O_EXCL), fsync, rename over it."""
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dirfd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise
    os.close(fd)
    os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def remove(dirfd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dirfd)
