"""Writes follow the kernel's rules (LAB.md; drivers/pci/iov.c, pci-sysfs.c, base/bus.c)."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest
from simhelpers import dev, errno_of, log_lines, rd

from vfctl import sim
from vfctl.host.open import open_host
from vfctl.sim.host import SimHost

PF = "0000:01:00.0"
VFS4 = ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4", "0000:01:10.6"]


def numvfs(root: Path, value: str, pf: str = PF) -> None:
    sim.write(root, dev(pf, "sriov_numvfs"), value)


def sriov_regs(root: Path, bdf: str) -> tuple[int, int]:
    """(NumVFs, IOV control) from the PF's config file."""
    cfg = (root / dev(bdf, "config")).read_bytes()
    pos = 0x100
    while struct.unpack_from("<I", cfg, pos)[0] & 0xFFFF != 0x10:
        pos = struct.unpack_from("<I", cfg, pos)[0] >> 20
    return struct.unpack_from("<H", cfg, pos + 0x10)[0], struct.unpack_from("<H", cfg, pos + 8)[0]


def bus(root: Path) -> list[str]:
    return sorted(os.listdir(root / "sys/bus/pci/devices"))


def driver(root: Path, bdf: str) -> str | None:
    p = root / dev(bdf, "driver")
    return os.path.basename(os.readlink(p)) if p.is_symlink() else None


def test_enable_creates_vfs_like_the_lab_kernel(minimal: Path) -> None:
    root = minimal
    numvfs(root, "4")
    assert rd(root, dev(PF, "sriov_numvfs")) == "4"
    groups = set()
    for i, vf in enumerate(VFS4):
        assert os.path.realpath(root / dev(PF, f"virtfn{i}")) == os.path.realpath(root / dev(vf))
        assert os.readlink(root / dev(PF, f"virtfn{i}")) == f"../{vf}"
        assert os.readlink(root / dev(vf, "physfn")) == f"../{PF}"
        assert driver(root, vf) == "igbvf"
        assert rd(root, dev(vf, "vendor")) == "0x8086" and rd(root, dev(vf, "device")) == "0x10ca"
        cfg = (root / dev(vf, "config")).read_bytes()
        assert cfg[:4] == b"\xff\xff\xff\xff"  # a VF's own config reads ffff:ffff
        assert os.listdir(root / dev(vf, "net")) == [f"enp1s0v{i}"]
        assert (root / f"sys/class/net/enp1s0v{i}").is_symlink()
        g = os.path.basename(os.readlink(root / dev(vf, "iommu_group")))
        assert os.listdir(root / f"sys/kernel/iommu_groups/{g}/devices") == [vf]
        groups.add(g)
    assert len(groups) == 4
    assert sriov_regs(root, PF) == (4, 0x9)  # NumVFs, VF Enable + VF MSE
    assert (root / "sys/module/igbvf").is_dir()  # loaded on demand, as udev does


def test_same_value_is_a_no_op_and_a_different_one_is_ebusy(minimal: Path) -> None:
    root = minimal
    numvfs(root, "4")
    before = (root / dev(VFS4[0], "net/enp1s0v0/ifindex")).read_text()
    numvfs(root, "4")
    numvfs(root, "4\n")
    assert (root / dev(VFS4[0], "net/enp1s0v0/ifindex")).read_text() == before
    assert errno_of(lambda: numvfs(root, "2")) == errno.EBUSY
    assert rd(root, dev(PF, "sriov_numvfs")) == "4" and len(bus(root)) == 7
    assert [line[2] for line in log_lines(root)] == ["ok", "ok", "ok", "EBUSY"]


@pytest.mark.parametrize("value", ["8", "9", "65535", "65536", "99999999999999999999999"])
def test_above_totalvfs_is_erange_enabled_or_not(minimal: Path, value: str) -> None:
    assert errno_of(lambda: numvfs(minimal, value)) == errno.ERANGE
    numvfs(minimal, "2")
    assert errno_of(lambda: numvfs(minimal, value)) == errno.ERANGE


@pytest.mark.parametrize("value", ["-1", "abc", "", " 4", "4 ", "4\n\n", "0x", "08", "4x", "1.5"])
def test_garbage_is_einval(minimal: Path, value: str) -> None:
    assert errno_of(lambda: numvfs(minimal, value)) == errno.EINVAL
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "0"


@pytest.mark.parametrize(("value", "n"), [("0x3", 3), ("+2", 2), ("07", 7), ("5\n", 5)])
def test_kstrtou16_forms_are_accepted(minimal: Path, value: str, n: int) -> None:
    numvfs(minimal, value)
    assert rd(minimal, dev(PF, "sriov_numvfs")) == str(n)


def test_zero_removes_vfs_links_netdevs_and_groups(minimal: Path) -> None:
    root = minimal
    groups_before = sorted(os.listdir(root / "sys/kernel/iommu_groups"))
    numvfs(root, "4")
    numvfs(root, "0")
    assert bus(root) == ["0000:00:00.0", "0000:00:01.0", PF]
    assert not [x for x in os.listdir(root / dev(PF)) if x.startswith("virtfn")]
    assert sorted(os.listdir(root / "sys/class/net")) == ["enp1s0", "lo"]
    assert sorted(os.listdir(root / "sys/kernel/iommu_groups")) == groups_before
    assert not [x for x in os.listdir(root / "sys/devices/pci0000:00/0000:00:01.0")
                if x.startswith("0000:01:10")]  # fmt: skip
    assert sriov_regs(root, PF) == (0, 0)
    assert not [x for x in os.listdir(root / "sys/bus/pci/drivers/igbvf") if x[:1] == "0"]


def test_numvfs_without_pf_driver_is_enoent_and_totalvfs_falls_back(minimal: Path) -> None:
    root = minimal
    numvfs(root, "0")  # same value: success even without looking at the driver
    sim.write(root, "sys/bus/pci/drivers/igb/unbind", PF)
    assert rd(root, dev(PF, "sriov_totalvfs")) == "8"  # the capability's, not igb's 7
    numvfs(root, "0")
    assert errno_of(lambda: numvfs(root, "3")) == errno.ENOENT
    assert errno_of(lambda: numvfs(root, "9")) == errno.ERANGE
    sim.write(root, "sys/bus/pci/drivers_probe", PF)
    assert driver(root, PF) == "igb" and rd(root, dev(PF, "sriov_totalvfs")) == "7"


def test_unbinding_the_pf_disables_sriov(minimal: Path) -> None:
    numvfs(minimal, "3")
    sim.write(minimal, "sys/bus/pci/drivers/igb/unbind", PF + "\n")
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "0"
    assert len(bus(minimal)) == 3
    assert not (minimal / "sys/class/net/enp1s0").exists()


def test_autoprobe_off_leaves_vfs_unbound(minimal: Path) -> None:
    root = minimal
    assert errno_of(lambda: sim.write(root, dev(PF, "sriov_drivers_autoprobe"), "x")) == (
        errno.EINVAL
    )
    sim.write(root, dev(PF, "sriov_drivers_autoprobe"), "0")
    assert rd(root, dev(PF, "sriov_drivers_autoprobe")) == "0"
    numvfs(root, "2")
    assert [driver(root, v) for v in VFS4[:2]] == [None, None]
    assert not (root / dev(VFS4[0], "net")).exists()
    assert rd(root, dev(VFS4[0], "enable")) == "0"
    # probing does nothing while autoprobe is off, and an explicit bind is refused...
    sim.write(root, "sys/bus/pci/drivers_probe", VFS4[0])
    assert driver(root, VFS4[0]) is None
    assert not (root / "sys/bus/pci/drivers/igbvf").exists()  # nothing asked for it yet
    sim.modprobe(root, "igbvf")
    assert driver(root, VFS4[0]) is None  # registering the driver does not probe them either
    err = errno_of(lambda: sim.write(root, "sys/bus/pci/drivers/igbvf/bind", VFS4[0]))
    assert err == errno.ENODEV
    # ...unless driver_override names a driver
    sim.write(root, dev(VFS4[0], "driver_override"), "igbvf")
    sim.write(root, "sys/bus/pci/drivers_probe", VFS4[0])
    assert driver(root, VFS4[0]) == "igbvf"
    sim.write(root, dev(PF, "sriov_drivers_autoprobe"), "on")
    assert rd(root, dev(PF, "sriov_drivers_autoprobe")) == "1"


def test_vfio_flow_override_unbind_probe(minimal: Path) -> None:
    root = minimal
    host = open_host(root)
    assert isinstance(host, SimHost)
    numvfs(root, "2")
    vf = VFS4[1]
    host.write(dev(vf, "driver_override"), "vfio-pci")
    assert rd(root, dev(vf, "driver_override")) == "vfio-pci"
    host.write(f"sys/bus/pci/devices/{vf}/driver/unbind", vf)
    assert driver(root, vf) is None and not (root / "sys/class/net/enp1s0v1").exists()
    host.write("sys/bus/pci/drivers_probe", vf)
    assert driver(root, vf) is None  # vfio-pci is not loaded: nothing matches, no error
    assert not (root / "sys/bus/pci/drivers/vfio-pci").exists()
    host.modprobe("vfio-pci")  # the driver registers and binds what names it
    assert driver(root, vf) == "vfio-pci"
    group = os.path.basename(os.readlink(root / dev(vf, "iommu_group")))
    assert sorted(os.listdir(root / "dev/vfio")) == sorted([group, "vfio"])
    assert (root / "sys/module/vfio_pci").is_dir() and (root / "sys/module/vfio").is_dir()
    # and back: clear the override, unbind, probe → the VF driver again
    host.write(dev(vf, "driver_override"), "\n")
    assert rd(root, dev(vf, "driver_override")) == "(null)"
    host.write("sys/bus/pci/drivers/vfio-pci/unbind", vf)
    assert os.listdir(root / "dev/vfio") == ["vfio"]
    host.write("sys/bus/pci/drivers_probe", vf)
    assert driver(root, vf) == "igbvf" and (root / "sys/class/net/enp1s0v1").exists()


def test_bind_and_unbind_errors(minimal: Path) -> None:
    root = minimal
    numvfs(root, "1")
    vf = VFS4[0]
    sim.modprobe(root, "vfio_pci")
    w = sim.write
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/igb/unbind", vf)) == errno.ENODEV
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/igb/unbind", "01:00.0")) == errno.ENODEV
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers_probe", "0000:09:00.0")) == errno.ENODEV
    # vfio-pci matches only through driver_override
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/vfio-pci/bind", vf)) == errno.ENODEV
    w(root, dev(vf, "driver_override"), "vfio-pci")
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/vfio-pci/bind", vf)) == errno.EBUSY
    w(root, "sys/bus/pci/drivers/igbvf/unbind", vf)
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/igbvf/bind", vf)) == errno.ENODEV
    w(root, "sys/bus/pci/drivers/vfio-pci/bind", vf)
    assert driver(root, vf) == "vfio-pci"
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/igb/bind", vf)) == errno.ENODEV


def test_new_id_binds_every_matching_unbound_device(minimal: Path) -> None:
    root = minimal
    numvfs(root, "4")
    sim.modprobe(root, "vfio-pci")
    for vf in VFS4[:3]:
        sim.write(root, "sys/bus/pci/drivers/igbvf/unbind", vf)
    sim.write(root, "sys/bus/pci/drivers/vfio-pci/new_id", "8086 10ca")
    # the one it was meant for, and every other unbound VF of that id with it
    assert [driver(root, v) for v in VFS4] == ["vfio-pci"] * 3 + ["igbvf"]
    assert len(os.listdir(root / "dev/vfio")) == 4
    new_id = "sys/bus/pci/drivers/igbvf/new_id"
    assert errno_of(lambda: sim.write(root, new_id, "8086 10ca")) == errno.EEXIST
    assert errno_of(lambda: sim.write(root, new_id, "8086")) == errno.EINVAL
    rm = "sys/bus/pci/drivers/vfio-pci/remove_id"
    assert errno_of(lambda: sim.write(root, rm, "8086 10cb")) == errno.ENODEV
    sim.write(root, rm, "8086 10ca")
    assert errno_of(lambda: sim.write(root, rm, "8086 10ca")) == errno.ENODEV


def test_read_only_missing_and_unmodelled_files(minimal: Path) -> None:
    root = minimal
    w = sim.write
    for ro in ("vendor", "sriov_totalvfs", "sriov_offset", "class", "resource"):
        assert errno_of(lambda ro=ro: w(root, dev(PF, ro), "1")) == errno.EACCES
    assert errno_of(lambda: w(root, dev(PF, "nonesuch"), "1")) == errno.ENOENT
    assert errno_of(lambda: w(root, "sys/bus/pci/devices/0000:09:00.0/x", "1")) == errno.ENOENT
    assert errno_of(lambda: w(root, dev(PF, "net"), "1")) == errno.EISDIR
    assert errno_of(lambda: w(root, dev(PF, "remove"), "1")) in (errno.ENOENT,)
    assert errno_of(lambda: w(root, dev(PF, "enable"), "1")) == errno.EOPNOTSUPP
    assert errno_of(lambda: w(root, "sys/bus/pci/drivers/vfio-pci/bind", PF)) == errno.ENOENT
    assert errno_of(lambda: sim.modprobe(root, "nonesuch")) == errno.ENOENT
    assert len(log_lines(root)) == 11  # every attempt is logged, failures included


def test_writes_through_resolved_and_class_net_paths(minimal: Path) -> None:
    root = minimal
    sim.write(root, "sys/class/net/enp1s0/device/sriov_numvfs", "2")
    assert rd(root, dev(PF, "sriov_numvfs")) == "2"
    sim.write(root, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/sriov_numvfs", "0")
    assert rd(root, dev(PF, "sriov_numvfs")) == "0"
    assert [line[0] for line in log_lines(root)] == [
        "sys/class/net/enp1s0/device/sriov_numvfs",
        "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/sriov_numvfs",
    ]


def test_lab_nvme_and_default_82599(make_host) -> None:
    lab = make_host("lab")
    numvfs(lab, "4", "0000:02:00.0")
    vfs = [f"0000:02:00.{i}" for i in range(1, 5)]
    assert [driver(lab, v) for v in vfs] == ["nvme"] * 4
    assert all(not (lab / dev(v, "net")).exists() for v in vfs)
    assert rd(lab, dev(vfs[3], "device")) == "0x0010"
    assert errno_of(lambda: numvfs(lab, "5", "0000:02:00.0")) == errno.ERANGE
    default = make_host("default")
    numvfs(default, "63")
    assert errno_of(lambda: numvfs(default, "64", "0000:01:00.1")) == errno.ERANGE
    numvfs(default, "63", "0000:01:00.1")
    assert os.path.basename(os.readlink(default / dev("0000:01:00.0", "virtfn62"))) == (
        "0000:01:1f.4"
    )
    assert os.path.basename(os.readlink(default / dev("0000:01:00.1", "virtfn62"))) == (
        "0000:01:1f.5"
    )
    assert driver(default, "0000:01:1f.5") == "ixgbevf"
    assert (default / "sys/class/net/enp1s0f1v62").is_symlink()
    numvfs(default, "0")
    assert len([b for b in bus(default) if b.startswith("0000:01:")]) == 2 + 63


def test_shared_group_gets_its_vfio_node_when_one_member_is_bound(make_host) -> None:
    root = make_host("default")
    sim.modprobe(root, "vfio-pci")
    pf = "0000:02:00.1"
    sim.write(root, dev(pf, "driver_override"), "vfio-pci")
    sim.write(root, "sys/bus/pci/drivers/igb/unbind", pf)
    sim.write(root, "sys/bus/pci/drivers_probe", pf)
    g = os.path.basename(os.readlink(root / dev(pf, "iommu_group")))
    assert sorted(os.listdir(root / "dev/vfio")) == sorted([g, "vfio"])
    assert driver(root, "0000:02:00.0") == "igb"  # the group is not viable: a mix of drivers
