"""QEMU processes on a simulated host: a VM that holds VFs' IOMMU groups open.

The real truth of "which VM holds this VF" is the QEMU process with ``/dev/vfio/<group>``
open; a simulated host has no such process, so a stand-in is made of what vfctl reads:
``proc/<pid>/fd/<n>`` links to ``/dev/vfio/<group>``, ``proc/<pid>/comm`` and
``proc/<pid>/cmdline``, and the VM manager's pid file (Proxmox
``var/run/qemu-server/<vmid>.pid``, libvirt ``run/libvirt/qemu/<name>.pid``). Tests and the
fake PVE start and stop these; vfctl itself only reads them (``vfctl.host.holders``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from vfctl.host.holders import LIBVIRT_PID_DIR, PVE_PID_DIRS

FIRST_PID = 40000
FIRST_FD = 20


def _pidfile(root: Path, backend: str, vm: str) -> Path:
    if backend == "proxmox":
        return root / PVE_PID_DIRS[0] / f"{vm.removeprefix('vm')}.pid"
    if backend == "libvirt":
        return root / LIBVIRT_PID_DIR / f"{vm}.pid"
    raise ValueError(f"unknown VM manager {backend!r}")


def _free_pid(root: Path) -> int:
    taken = (
        {int(p) for p in os.listdir(root / "proc") if p.isdigit()}
        if (root / "proc").is_dir()
        else set()
    )
    pid = FIRST_PID
    while pid in taken:
        pid += 1
    return pid


def start(root: Path, backend: str, vm: str, groups: Sequence[int], pid: int | None = None) -> int:
    """A QEMU stand-in for ``vm`` holding ``groups`` open; returns its pid."""
    pid = _free_pid(root) if pid is None else pid
    proc = root / "proc" / str(pid)
    (proc / "fd").mkdir(parents=True, exist_ok=True)
    (proc / "comm").write_text("kvm\n" if backend == "proxmox" else "qemu-system-x86\n")
    (proc / "cmdline").write_bytes(b"\0".join([b"/usr/bin/kvm", b"-name", vm.encode()]) + b"\0")
    for i, g in enumerate(groups):
        os.symlink(f"/dev/vfio/{g}", proc / "fd" / str(FIRST_FD + i))
    pf = _pidfile(root, backend, vm)
    pf.parent.mkdir(parents=True, exist_ok=True)
    tmp = pf.with_name(pf.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, pf)
    return pid


def stop(root: Path, backend: str, vm: str) -> None:
    """The VM's process exits: its fds close and the pid file goes."""
    pf = _pidfile(root, backend, vm)
    try:
        pid = int(pf.read_text().strip())
    except (OSError, ValueError):
        return
    shutil.rmtree(root / "proc" / str(pid), ignore_errors=True)
    pf.unlink(missing_ok=True)
