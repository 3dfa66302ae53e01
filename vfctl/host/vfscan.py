"""Batch per-VF sysfs reads for discovery: the pure-Python twin of the C extension ``_vfscan``.

Per VF, discovery needs four facts the PF cannot tell (its address the PF's offset/stride
tells: vfctl/discover_derive.py; ``links`` reads ``virtfnN`` where that is not enough):
driver, driver_override, IOMMU group and netdevs.  Both implementations make the same
reads, with the rules of every other sysfs read (``Host.read``: no blocking, one read of at
most 64 KiB, regular files only), and return identical results, which a differential test
checks (tests/host/test_vfscan.py): ``scan`` a tuple per VF, ``columns`` (what discovery
consumes) one list per fact, the few distinct override texts one str each in C, group names
of digits as ints. The regular-file check is one ``fstat`` per file, made
only off sysfs: one ``fstatfs`` of the directory showing SYSFS_MAGIC means every file below
is a kernel attribute (sysfs has no FIFOs or devices, and its links stay inside it), so on
a real host the check would cost a syscall per VF and never refuse anything.  The C one releases the GIL, builds no
Python object until every read is done and closes descriptors in batches, so it costs a few
syscalls per VF; this one is the oracle and the fallback (``VFCTL_NO_C=1`` or not built).
"""

from __future__ import annotations

import os
import stat

from vfctl import cext

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence

Raw = tuple[str | None, str | None, str | None, list[str]]  # driver, override, group, netdevs
# columns(): drivers (None: skipped), overrides, groups (int: digits), netdevs (None: skipped)
Cols = tuple[
    list[str | None] | None, list[str | None], list[int | str | None], list[list[str]] | None
]

MAX_ATTR = 1 << 16  # as Host.read: a sysfs attribute is one page
SKIP_DRIVER = 1  # the caller lists drivers/<drv>/ instead (one listing for all VFs)
SKIP_NET = 2  # the caller resolves sys/class/net's links instead
_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
SYSFS_MAGIC = 0x62656572  # include/uapi/linux/magic.h

_C_MOD = cext.optional("vfctl.host._vfscan")
HAVE_C = _C_MOD is not None and cext.USE_C


def _link_base(dirfd: int, path: str, full: bool = False) -> str | None:
    try:
        target = os.readlink(path, dir_fd=dirfd)
    except OSError:
        return None
    return target if full else target.rsplit("/", 1)[-1]


def _on_sysfs(dirfd: int) -> bool:
    """fstatfs(2) says sysfs (Python's os has no fstatfs: libc's, through ctypes)."""
    import ctypes  # the fallback's cost only; the C twin calls fstatfs itself

    buf = ctypes.create_string_buffer(512)  # struct statfs (120 bytes on 64-bit Linux)
    try:
        fstatfs = ctypes.CDLL(None, use_errno=True).fstatfs
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol: keep the check
        return False
    if fstatfs(dirfd, buf) != 0:
        return False
    # f_type comes first, a long (__fsword_t) on every Linux ABI but s390x, where a misread
    # only keeps the check
    return ctypes.c_long.from_buffer(buf).value == SYSFS_MAGIC


def checks_regular(directory: str) -> bool:
    """Whether reads below ``directory`` fstat each file (False on sysfs: see above)."""
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return not _on_sysfs(dirfd)
    finally:
        os.close(dirfd)


def _read_attr(dirfd: int, path: str, check: bool) -> str | None:
    try:
        fd = os.open(path, _FLAGS, dir_fd=dirfd)
    except OSError:
        return None
    try:
        if check and not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MAX_ATTR).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _list_dir(dirfd: int, path: str) -> list[str]:
    try:
        fd = os.open(path, _FLAGS | os.O_DIRECTORY, dir_fd=dirfd)
    except OSError:
        return []
    try:
        return sorted(os.listdir(fd))
    except OSError:
        return []
    finally:
        os.close(fd)


def odd(addr: str) -> bool:
    """A virtfn target no read should go through (left to Host, which refuses or reads it)."""
    return addr in ("", ".", "..") or len(addr.encode(errors="surrogateescape")) > 255


def links_python(directory: str, paths: Sequence[str], full: bool = False) -> list[str | None]:
    """Basename (or, ``full``, all) of each relative path's symlink target, or None."""
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return [_link_base(dirfd, p, full) for p in paths]
    finally:
        os.close(dirfd)


def scan_python(directory: str, addresses: Sequence[str], flags: int = 0) -> list[Raw]:
    """Per VF address: (driver, driver_override, iommu_group, netdevs)."""
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        check = not _on_sysfs(dirfd)
        return [
            (
                None if flags & SKIP_DRIVER else _link_base(dirfd, f"{a}/driver"),
                _read_attr(dirfd, f"{a}/driver_override", check),
                _link_base(dirfd, f"{a}/iommu_group"),
                [] if flags & SKIP_NET else _list_dir(dirfd, f"{a}/net"),
            )
            for a in addresses
        ]
    finally:
        os.close(dirfd)


def group_value(name: str | None) -> int | str | None:
    """An IOMMU group link's name as columns() gives it: an int when it is 1-18 ASCII digits
    (the kernel's names, made without a str), else the name itself for the caller's rule."""
    if name and len(name) <= 18 and name.isascii() and name.isdigit():
        return int(name)
    return name


def columns_python(directory: str, addresses: Sequence[str], flags: int = 0) -> Cols:
    """scan_python()'s facts one list per fact: what discovery consumes (no tuple per VF)."""
    rows = scan_python(directory, addresses, flags)
    return (
        None if flags & SKIP_DRIVER else [r[0] for r in rows],
        [r[1] for r in rows],
        [group_value(r[2]) for r in rows],
        None if flags & SKIP_NET else [r[3] for r in rows],
    )


def reads_python(directory: str, paths: Sequence[str]) -> list[str | None]:
    """Each relative path's text (as driver_override in the scan), or None."""
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        check = not _on_sysfs(dirfd)
        return [_read_attr(dirfd, p, check) for p in paths]
    finally:
        os.close(dirfd)


def reads(directory: str, paths: Sequence[str]) -> list[str | None]:
    """The C batch when built (and not disabled), else the Python twin; same results."""
    if HAVE_C:
        return _C_MOD.reads(directory, list(paths))  # type: ignore[union-attr,no-any-return]
    return reads_python(directory, paths)


def links(directory: str, paths: Sequence[str], full: bool = False) -> list[str | None]:
    """The C batch when built (and not disabled), else the Python twin; same results."""
    if HAVE_C:
        return _C_MOD.links(directory, list(paths), full)  # type: ignore[union-attr,no-any-return]
    return links_python(directory, paths, full)


def checks(directory: str) -> bool:
    """Whether the batch would fstat each file below ``directory`` (both twins decide alike)."""
    if HAVE_C:
        return bool(_C_MOD.checks_regular(directory))  # type: ignore[union-attr]
    return checks_regular(directory)


def columns(directory: str, addresses: Sequence[str], flags: int = 0) -> Cols:
    """The C batch when built (and not disabled), else the Python twin; same results."""
    if HAVE_C:
        return _C_MOD.columns(directory, list(addresses), flags)  # type: ignore[union-attr,no-any-return]
    return columns_python(directory, addresses, flags)


def scan(directory: str, addresses: Sequence[str], flags: int = 0) -> list[Raw]:
    """The C batch when built (and not disabled), else the Python twin; same results."""
    if HAVE_C:
        return _C_MOD.scan(directory, list(addresses), flags)  # type: ignore[union-attr,no-any-return]
    return scan_python(directory, addresses, flags)


def listing_python(directory: str) -> list[str]:
    """The entries of ``directory``, sorted (OSError as os.listdir raises it)."""
    return sorted(os.listdir(directory))


def listing(directory: str) -> list[str]:
    """The C listing when built (and not disabled), else the Python twin; same results (C:
    the names sorted as bytes, which is Python's order for all but escaped bytes)."""
    if HAVE_C:
        return _C_MOD.listing(directory)  # type: ignore[union-attr,no-any-return]
    return listing_python(directory)


def owners_python(directory: str, drivers: Sequence[str], names: Sequence[str]) -> list[str | None]:
    """Each name's driver: the last of ``drivers`` whose directory below ``directory`` lists
    an entry of that name holding ':' (the kernel's link to a bound device, drivers/base/dd.c,
    driver_sysfs_add()); None where none does. A directory that cannot be listed counts as
    empty. ``names``: str, without NUL (as the C twin, which refuses one)."""
    if any("\0" in n for n in names):
        raise ValueError("embedded null byte")
    got: dict[str, str] = {}
    for drv in drivers:
        try:
            entries = os.listdir(os.path.join(directory, drv))
        except OSError:
            continue
        got.update(dict.fromkeys([e for e in entries if ":" in e], drv))
    return list(map(got.get, names))


def owners(directory: str, drivers: Sequence[str], names: Sequence[str]) -> list[str | None]:
    """The C batch when built (and not disabled), else the Python twin; same results (C: no
    str per entry, the names looked up in a hash table of their bytes)."""
    if HAVE_C:
        return _C_MOD.owners(directory, list(drivers), list(names))  # type: ignore[union-attr,no-any-return]
    return owners_python(directory, drivers, names)
