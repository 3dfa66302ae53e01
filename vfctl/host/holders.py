"""Which VM really holds a VF: the QEMU process that has its ``/dev/vfio/N`` open.

VM configs say what a VM *may* use; the running truth is on the host, so this works with no
VM manager reachable (at boot, before pmxcfs or libvirtd are up):
- ``/proc/<pid>/fd/*`` links to ``/dev/vfio/<group>`` name the holder process;
- pid files map a process to a VM: Proxmox ``/var/run/qemu-server/<vmid>.pid``
  (qemu-server ``PVE::QemuServer::Helpers::vm_pidfile_name``), libvirt
  ``/run/libvirt/qemu/<name>.pid``;
- Proxmox's ``/run/qemu-server/pci-id-reservations`` (qemu-server ``PCI.pm``,
  ``reserve_pci_usage``): ``<pci-id> <vmid> pid:<pid>`` once the VM runs, ``time:<epoch>``
  for the start window. A ``pid:`` line counts while that VM still runs with that pid, a
  ``time:`` line while the time is in the future, exactly as qemu-server decides.
"""

from __future__ import annotations

import os
import stat
import time

from vfctl.host.sysfs import Host
from vfctl.model import HeldBy
from vfctl.record import dataclass

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Iterable, Mapping

PVE_PID_DIRS = ("var/run/qemu-server", "run/qemu-server")
LIBVIRT_PID_DIR = "run/libvirt/qemu"
RESERVATIONS = "run/qemu-server/pci-id-reservations"
MAX_SMALL = 64 * 1024  # pid files are tiny; the reservation file has one line per function
_PCIRE = r"[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"  # qemu-server $PCIRE
_RESERVATION = rf"({_PCIRE})\s([0-9]+)\s(time|pid):([0-9]+)"
_VMID = r"[1-9][0-9]{2,8}"
_PID = r"[0-9]{1,10}"


def _fullmatch(pattern: str, text: str) -> re.Match[str] | None:
    """``re.fullmatch``, re imported only on a host that has such files (a plain listing of a
    host without VMs never does: importing re costs more than its whole discovery)."""
    import re

    return re.fullmatch(pattern, text)


def read_small(host: Host, rel: str) -> str | None:
    """A small regular file's text, or None: never follows a final symlink, blocks or balloons."""
    try:
        fd = os.open(host.path_str(rel), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_SMALL + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_SMALL:
        return None
    return data.decode("utf-8", "replace")


def _pid(text: str | None) -> int | None:
    v = (text or "").strip()
    return int(v) if _fullmatch(_PID, v) else None


@dataclass(frozen=True)
class VmProcess:
    backend: str  # "proxmox" | "libvirt"
    vm: str  # "vm101" | domain name


def vm_pids(host: Host) -> dict[int, VmProcess]:
    """pid -> VM, from the VM managers' pid files (files naming no live process are stale)."""
    out: dict[int, VmProcess] = {}
    for d in PVE_PID_DIRS:
        for name in host.listdir(d):
            vmid = name.removesuffix(".pid")
            if name.endswith(".pid") and _fullmatch(_VMID, vmid):
                pid = _pid(read_small(host, f"{d}/{name}"))
                if pid is not None and host.isdir(f"proc/{pid}"):
                    out.setdefault(pid, VmProcess("proxmox", f"vm{vmid}"))
    for name in host.listdir(LIBVIRT_PID_DIR):
        if name.endswith(".pid") and len(name) > 4:
            pid = _pid(read_small(host, f"{LIBVIRT_PID_DIR}/{name}"))
            if pid is not None and host.isdir(f"proc/{pid}"):
                out.setdefault(pid, VmProcess("libvirt", name[:-4]))
    return out


def vfio_group_holders(host: Host, groups: Iterable[int] | None) -> dict[int, list[int]]:
    """group -> pids holding ``/dev/vfio/<group>`` open, in one pass over /proc (``None``:
    every group)."""
    want = groups if groups is None or isinstance(groups, (set, frozenset)) else set(groups)
    out: dict[int, list[int]] = {}
    if want is not None and not want:
        return out
    for pid, target in host.open_fds():
        if not target.startswith("/dev/vfio/"):
            continue
        name = target[10:]  # /dev/vfio/<group>, as the kernel names it (no leading zeros)
        if not (name.isascii() and name.isdigit() and name == str(int(name))):
            continue
        g = int(name)
        if (want is None or g in want) and pid not in out.get(g, []):
            out.setdefault(g, []).append(pid)  # one QEMU may hold several groups
    return out


@dataclass(frozen=True)
class Reservation:
    vmid: int
    pid: int | None
    until: int | None  # epoch seconds of a start-window reservation


def reservations(host: Host) -> dict[str, Reservation]:
    """The reservation file, parsed line by line as qemu-server does (other lines ignored)."""
    out: dict[str, Reservation] = {}
    for line in (read_small(host, RESERVATIONS) or "").split("\n"):
        m = _fullmatch(_RESERVATION, line) if line else None  # an empty line never matches
        if m:
            n = int(m[4])
            out[m[1]] = Reservation(
                int(m[2]), n if m[3] == "pid" else None, n if m[3] == "time" else None
            )
    return out


def _full(addr: str) -> str:
    return addr if addr.count(":") == 2 else f"0000:{addr}"


def held_by(
    host: Host,
    vfs: Mapping[str, int | None] | Callable[[], Mapping[str, int | None]],
    now: float | None = None,
    group_pids: Mapping[int, list[int]] | None = None,
) -> dict[str, HeldBy]:
    """VF address -> who holds it, for VFs given as address -> IOMMU group.

    ``vfs`` may be a function making that mapping (at least one VF has a group): it is called
    only when a process holds some /dev/vfio group or a reservation is listed, so a host where
    nobody holds one (most listings) never builds it for its tens of thousands of VFs.
    ``group_pids``: the /dev/vfio holders when the caller has scanned /proc already.
    """
    if callable(vfs):
        holders = vfio_group_holders(host, None) if group_pids is None else group_pids
    else:
        groups = set(vfs.values())  # C-level: one set for 16,384 VFs
        groups.discard(None)
        ints: set[int] = groups  # type: ignore[assignment]  # None discarded just above
        holders = vfio_group_holders(host, ints) if group_pids is None else group_pids
    res = {_full(a): r for a, r in reservations(host).items()}
    if not holders and not res:
        return {}  # nobody holds a group, nothing reserved: no VF to look at
    if callable(vfs):
        vfs = vfs()
    procs = vm_pids(host) if holders or res else {}
    by_vmid = {int(p.vm[2:]): pid for pid, p in procs.items() if p.backend == "proxmox"}
    t = time.time() if now is None else now
    out: dict[str, HeldBy] = {}
    for addr, group in vfs.items():
        pids = holders.get(group, []) if group is not None else []
        if pids:
            vp = next((procs[p] for p in pids if p in procs), None)
            pid = next((p for p in pids if p in procs), pids[0])
            out[addr] = HeldBy(vp.vm if vp else None, pid, vp.backend if vp else None)
            continue
        r = res.get(addr)
        if r is None:
            continue
        if r.pid is not None and by_vmid.get(r.vmid) == r.pid:
            out[addr] = HeldBy(f"vm{r.vmid}", r.pid, "proxmox")
        elif r.until is not None and r.until > t:
            out[addr] = HeldBy(f"vm{r.vmid}", None, "proxmox")
    return out
