"""Root-aware, path-safe access to the host's sysfs/dev/proc: the only module that touches them.

Every path is relative to a root (``/`` or ``--root DIR``/``VFCTL_ROOT``). Names that come
from the user are checked before any filesystem call, so nothing can escape the root. This is
the real host's implementation; a simulated host (``vfctl.sim``) subclasses it and overrides
the writers, and :func:`vfctl.host.open.open_host` picks which one a root gets.
"""

from __future__ import annotations

import errno
import os

from vfctl.errors import UsageError
from vfctl.host import vfscan
from vfctl.host.files import read_attr

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from vfctl.host.netlink import Netlink

MAX_NAME = 255

PCI_DEVICES = "sys/bus/pci/devices"
PCI_DRIVERS = "sys/bus/pci/drivers"
CLASS_NET = "sys/class/net"
IOMMU_GROUPS = "sys/kernel/iommu_groups"


def _normpath(root: str) -> str:
    """``str(Path(root))``: what the root was always shown and joined as. Plain absolute
    paths are already that; only odd spellings (``a//b``, ``./x``, ``x/``) need pathlib."""
    plain = root.startswith("/") and "//" not in root and "/./" not in root
    if plain and (root == "/" or not (root.endswith("/") or root.endswith("/."))):
        return root
    from pathlib import Path

    return str(Path(root))


def _inside(real: str, root: str) -> str | None:
    """``real`` relative to ``root`` (both resolved; ``.`` for the root itself, as
    Path.relative_to spells it), or None when it lies outside."""
    if real == root:
        return "."
    under = root.rstrip("/") + "/"
    return real[len(under) :] if real.startswith(under) else None


def decimal(raw: str, most: int) -> bool:
    """``raw`` is 1 to ``most`` ASCII digits (``re.fullmatch("[0-9]{1,most}")``, without re:
    importing it costs more than a typical host's whole discovery)."""
    return 0 < len(raw) <= most and raw.isascii() and raw.isdigit()


def check_name(name: str, what: str = "name") -> str:
    """Refuse a user-given path component that could leave the root or is not a single name."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or len(name) > MAX_NAME:
        shown = name.replace("\0", "\\0")[:60]
        raise UsageError(f"invalid {what} {shown!r}: must be a single name without '/' or '..'")
    return name


def to_int(v: str | None, base: int = 0) -> int | None:
    """An attribute's text as Host.read_int reads it: None when absent, empty or not a number."""
    if not v:
        return None
    try:
        return int(v, base)
    except ValueError:
        return None


class Host:
    """One host seen through its root directory: the running kernel at ``/``, or a tree."""

    # a running system: sockets under run/ are daemons serving this host (backend detection)
    live = True
    CLASS_NET = CLASS_NET  # for the netlink side, which reads a tree's links without importing us

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.top = _normpath(os.fspath(root))
        self._prefix = self.top.rstrip("/")
        self._root: Path | None = None
        self._netlink: Netlink | None = None

    @property
    def root(self) -> Path:
        """The root as a Path (made on first use: the lean read path imports no pathlib)."""
        if self._root is None:
            from pathlib import Path

            self._root = Path(self.top)
        return self._root

    def __repr__(self) -> str:
        return f"Host({self.top!r})"

    @property
    def netlink(self) -> Netlink:
        """This host's rtnetlink, opened once: each kind of host brings its own."""
        if self._netlink is None:
            self._netlink = self._open_netlink()
        return self._netlink

    def _open_netlink(self) -> Netlink:
        raise NotImplementedError("a Host's netlink comes with its kind: use open_host()")

    def path(self, rel: str) -> Path:
        """Absolute path of a root-relative path (no symlink resolution)."""
        from pathlib import Path

        return Path(self.path_str(rel))

    def path_str(self, rel: str) -> str:
        """``path`` as a string: this is on every discovery read, so it stays cheap."""
        if "\0" in rel or "/." in "/" + rel:
            for part in rel.split("/"):
                if part in (".", "..") or "\0" in part:
                    raise UsageError(f"path {rel!r} escapes the host root")
        return f"{self._prefix}/{rel.strip('/')}"

    def rel(self, path: Path) -> str:
        """Root-relative form of an absolute path under the root."""
        return str(path.relative_to(self.root))

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path_str(rel))

    def isdir(self, rel: str) -> bool:
        return os.path.isdir(self.path_str(rel))

    def read(self, rel: str) -> str:
        """A sysfs attribute's value, stripped; raises OSError as the kernel would.

        O_NONBLOCK and a regular-file check: sysfs attributes are regular files, so a FIFO or
        a device planted in a host tree is refused (EINVAL) instead of blocking the run.
        """
        return read_attr(self.path_str(rel)).decode("utf-8", "replace").strip()

    def read_opt(self, rel: str) -> str | None:
        """An attribute's value, or None when it is absent or unreadable."""
        try:
            return self.read(rel)
        except OSError:
            return None

    def read_int(self, rel: str, base: int = 0) -> int | None:
        return to_int(self.read_opt(rel), base)

    def listdir(self, rel: str) -> list[str]:
        try:
            return vfscan.listing(self.path_str(rel))  # sorted in C: 16,500 names on big hosts
        except OSError:
            return []

    def names(self, rel: str) -> list[str]:
        """``listdir`` unsorted, for callers that only look names up (sorting 16,384 names of
        a driver directory costs ~4 ms)."""
        try:
            return os.listdir(self.path_str(rel))
        except OSError:
            return []

    def link_name(self, rel: str) -> str | None:
        """Last component of a symlink's target (``driver`` → ``igb``), or None."""
        try:
            return os.path.basename(os.readlink(self.path_str(rel)))
        except OSError:
            return None

    def link_rel(self, rel: str) -> str | None:
        """Root-relative resolved target of a symlink, or None if dangling/absent/outside."""
        p = self.path_str(rel)
        if not os.path.lexists(p):
            return None
        return _inside(os.path.realpath(p), os.path.realpath(self.top))

    def write(self, rel: str, value: str) -> None:
        """Write a sysfs attribute; every errno from the kernel reaches the caller as OSError."""
        fd = os.open(self.confined(rel), os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            data = value.encode()
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.EIO, f"short write to {rel}")
        finally:
            os.close(fd)

    def confined(self, rel: str) -> str:
        """The real path of a write target, refused (EXDEV) when symlinks lead out of the root.

        A host tree given with --root is data: a ``devices/<bdf>`` link pointing at the real
        /sys must not turn a write meant for the tree into one on this machine.
        """
        p = self.path_str(rel)
        if self._prefix == "":
            return p
        real = os.path.realpath(p)
        root = os.path.realpath(self.top)
        if _inside(real, root) is None:
            raise OSError(errno.EXDEV, f"{rel} resolves to {real}, outside the host root {root}")
        return real

    def config_path(self, address: str) -> str:
        """Absolute path of a PCI device's config file, for the C parser."""
        return self.path_str(f"{PCI_DEVICES}/{check_name(address, 'PCI address')}/config")

    def settle(self) -> None:
        """Let pending driver probes run: the kernel does that by itself (the simulator does not)."""

    def modprobe(self, module: str) -> None:
        """Load a kernel module; the name is checked before anything runs."""
        from vfctl.inputs import driver_name

        self._load_module(driver_name(module, "module"))

    def _load_module(self, module: str) -> None:
        if self.exists(f"sys/module/{module.replace('-', '_')}"):
            return
        if self._prefix != "":  # modprobe loads into this machine's kernel, not the tree's
            raise OSError(errno.EXDEV, f"modprobe {module}: {self.root} is not this machine's root")
        import subprocess  # here: most commands never load a module (~5 ms to import)

        proc = subprocess.run(["modprobe", module], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OSError(errno.ENOENT, f"modprobe {module}: {proc.stderr.strip()}")

    def module_known(self, module: str) -> bool | None:
        """Whether ``modprobe module`` would find it, asked without loading anything
        (``modprobe --dry-run``); None when this root's kernel cannot be asked."""
        from vfctl.inputs import driver_name

        return self._module_known(driver_name(module, "module"))

    def _module_known(self, module: str) -> bool | None:
        if self.exists(f"sys/module/{module.replace('-', '_')}"):
            return True
        if self._prefix != "":
            return None
        import subprocess

        try:
            proc = subprocess.run(
                ["modprobe", "--dry-run", "--quiet", module], capture_output=True, check=False
            )
        except OSError:
            return None
        return proc.returncode == 0

    def open_fds(self) -> Iterator[tuple[int, str]]:
        """Every open descriptor on the host as (pid, link target): one pass over /proc/*/fd."""
        for pid in self.listdir("proc"):
            if not pid.isdigit():
                continue
            fds = self.path(f"proc/{pid}/fd")
            try:
                entries = os.listdir(fds)
            except OSError:
                continue
            for fd in entries:
                try:
                    yield int(pid), os.readlink(fds / fd)
                except OSError:
                    continue
