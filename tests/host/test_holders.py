"""held_by from the host alone: /dev/vfio holders, VM pid files, PVE's reservation file.

Reservation semantics as qemu-server ``src/PVE/QemuServer/PCI.pm`` (``reserve_pci_usage``)
decides them: ``pid:`` counts while that VM runs locally with that pid, ``time:`` while the
time is in the future. Pid files as ``PVE::QemuServer::Helpers::vm_pidfile_name`` and
libvirt's ``/run/libvirt/qemu/<name>.pid`` name them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vfctl.host import holders
from vfctl.host.open import open_host
from vfctl.model import HeldBy
from vfctl.sim import vm as sim_vm

A, B, C, D = "0000:01:10.0", "0000:01:10.2", "0000:01:10.4", "0000:01:10.6"


def _root(tmp_path: Path) -> Path:
    (tmp_path / "proc").mkdir()
    return tmp_path


def test_fd_holders_map_to_vms_of_both_managers(tmp_path: Path) -> None:
    root = _root(tmp_path)
    p1 = sim_vm.start(root, "proxmox", "vm101", [41])
    p2 = sim_vm.start(root, "libvirt", "web1", [42, 43])
    stray = root / "proc/999/fd"
    stray.mkdir(parents=True)
    os.symlink("/dev/vfio/44", stray / "3")
    held = holders.held_by(open_host(root), {A: 41, B: 42, C: 43, D: 44})
    assert held[A] == HeldBy("vm101", p1, "proxmox")
    assert held[B] == held[C] == HeldBy("web1", p2, "libvirt")
    assert held[D] == HeldBy(None, 999, None)  # a process that is no known VM
    sim_vm.stop(root, "proxmox", "vm101")
    assert A not in holders.held_by(open_host(root), {A: 41})


def test_reservations_follow_qemu_server_rules(tmp_path: Path) -> None:
    root = _root(tmp_path)
    now = int(time.time())
    pid = sim_vm.start(root, "proxmox", "vm101", [])
    res = root / holders.RESERVATIONS
    res.parent.mkdir(parents=True)
    res.write_text(
        f"{A} 101 pid:{pid}\n"  # running with that pid: held
        f"{B} 102 pid:{pid}\n"  # VM 102 is not running: leftover
        f"{C} 103 time:{now + 30}\n"  # start window: held, no pid yet
        f"{D} 104 time:{now - 30}\n"  # expired: leftover
        "garbage line\n0000:01:11.0 105 pid:1 trailing\n"
    )
    held = holders.held_by(open_host(root), {A: None, B: None, C: None, D: None}, now=now)
    assert held == {A: HeldBy("vm101", pid, "proxmox"), C: HeldBy("vm103", None, "proxmox")}


def test_hostile_pid_and_reservation_files_are_ignored(tmp_path: Path) -> None:
    root = _root(tmp_path)
    pid = sim_vm.start(root, "proxmox", "vm101", [41])
    pidfile = root / "var/run/qemu-server/101.pid"
    pidfile.unlink()
    os.mkfifo(pidfile)  # would block a plain open()/read()
    res = root / holders.RESERVATIONS
    res.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/shadow", res)  # never followed
    (root / "run/libvirt/qemu").mkdir(parents=True)
    (root / "run/libvirt/qemu/big.pid").write_text("1" * (holders.MAX_SMALL + 10))
    held = holders.held_by(open_host(root), {A: 41})
    assert held[A] == HeldBy(None, pid, None)  # the holder is known, its VM is not


def test_a_lazy_vf_map_is_made_only_when_something_is_held(tmp_path: Path) -> None:
    """discover passes the address -> group map as a function: nobody holding a group and no
    reservation, it is never called; otherwise the answer is the mapping's own."""
    root = _root(tmp_path)
    vfs = {A: 41, B: 42, C: None, D: 44}
    calls: list[int] = []

    def lazy() -> dict[str, int | None]:
        calls.append(1)
        return vfs

    h = open_host(root)
    assert holders.held_by(h, lazy) == {} and calls == []
    stray = root / "proc/999/fd"
    stray.mkdir(parents=True)
    os.symlink("/dev/vfio/77", stray / "3")  # a group no VF is in: still nobody's VF
    assert holders.held_by(h, lazy) == holders.held_by(h, vfs) == {} and calls == [1]
    p1 = sim_vm.start(root, "proxmox", "vm101", [41])
    res = root / holders.RESERVATIONS
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(f"{C} 101 pid:{p1}\n")
    want = {A: HeldBy("vm101", p1, "proxmox"), C: HeldBy("vm101", p1, "proxmox")}
    assert holders.held_by(h, lazy) == holders.held_by(h, vfs) == want and calls == [1, 1]
