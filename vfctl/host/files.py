"""Reading files a user or a host tree hands us, without ever blocking or reading unbounded.

Every open is O_NONBLOCK (a FIFO opens at once instead of waiting for a writer) and is followed
by a regular-file check: sysfs attributes, config spaces, profiles, dumps and token files are
all regular files, so anything else is refused before a read could block.
"""

from __future__ import annotations

import errno
import os
import stat

from vfctl.errors import UsageError, VfctlError

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
MAX_ATTR = 1 << 16  # sysfs text attributes hold at most one page; config space is 4 KiB


def read_attr(path: str, limit: int = MAX_ATTR) -> bytes:
    """At most ``limit`` bytes of a regular file; OSError (EINVAL for the wrong type) otherwise.

    The buffer is sized by what fstat says (sysfs: a page; pci.ids: its 1.4 MB), not by
    ``limit`` (a 16 MiB buffer for pci.ids cost ~0.6 ms); a size of 0 (procfs) or a file that
    grew since is read on up to ``limit``."""
    fd = os.open(path, READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        want = min(limit, st.st_size + 1) if st.st_size > 0 else limit
        data = os.read(fd, want)
        return data if len(data) < want or want == limit else data + os.read(fd, limit - want)
    finally:
        os.close(fd)


class FileRefused(UsageError):
    """A file that exists but is refused (type, size, read error): ``reason`` without the path."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def read_regular(path: str, limit: int, what: str, missing: type[VfctlError] = UsageError) -> bytes:
    """A whole regular file of at most ``limit`` bytes, never cut: bigger ones are refused (exit 2).

    ``missing``: the error for a path that does not exist (NotFoundError gives exit 3).
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        raise missing(f"{path}: no such {what}") from None
    except OSError as e:
        raise FileRefused(path, f"cannot open: {os.strerror(e.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(path, "not a regular file")
        if st.st_size > limit:
            raise FileRefused(path, f"{what} larger than {limit >> 10} KiB: refused")
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                b = os.read(fd, min(1 << 16, limit + 1 - size))
            except OSError as e:
                raise FileRefused(path, f"cannot read: {os.strerror(e.errno or 0)}") from None
            if not b:
                break
            chunks.append(b)
            size += len(b)
            if size > limit:  # grew since fstat
                raise FileRefused(path, f"{what} larger than {limit >> 10} KiB: refused")
        return b"".join(chunks)
    finally:
        os.close(fd)
