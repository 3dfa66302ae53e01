"""snapshot() records a host through the sysfs layout into a simulated host that goes on."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from simhelpers import dev, errno_of, rd, required

from vfctl import sim

ATTRS = ["vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision",
         "irq", "resource", "numa_node", "local_cpulist", "driver_override", "enable",
         "sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device",
         "sriov_drivers_autoprobe"]  # fmt: skip


def tree(root: Path) -> dict[str, object]:
    """What a reader of the layout sees: per device attributes, links, config; nets; groups."""
    out: dict[str, object] = {}
    bus = root / "sys/bus/pci/devices"
    for bdf in sorted(os.listdir(bus)):
        d = bus / bdf
        entry: dict[str, object] = {"path": os.readlink(d), "config": (d / "config").read_bytes()}
        for a in ATTRS:
            if (d / a).exists():
                entry[a] = (d / a).read_text()
        for name in sorted(os.listdir(d)):
            if (d / name).is_symlink():
                entry[name] = os.readlink(d / name)
        if (d / "net").is_dir():
            entry["net"] = sorted(os.listdir(d / "net"))
        out[bdf] = entry
    net = root / "sys/class/net"
    out["class/net"] = {n: os.readlink(net / n) for n in sorted(os.listdir(net))}
    out["addresses"] = {n: (net / n / "address").read_text() for n in sorted(os.listdir(net))}
    groups = root / "sys/kernel/iommu_groups"
    out["groups"] = {g: sorted(os.listdir(groups / g / "devices")) for g in os.listdir(groups)}
    out["drivers"] = sorted(os.listdir(root / "sys/bus/pci/drivers"))
    out["dev/vfio"] = sorted(os.listdir(root / "dev/vfio"))
    return out


def busy_default(make_host) -> Path:  # type: ignore[no-untyped-def]
    root = make_host("default")
    sim.write(root, dev("0000:02:00.0", "sriov_numvfs"), "4")
    sim.write(root, dev("0000:02:00.1", "sriov_drivers_autoprobe"), "0")
    sim.write(root, dev("0000:02:00.1", "sriov_numvfs"), "2")
    sim.modprobe(root, "vfio-pci")
    vf = "0000:02:10.2"
    sim.write(root, dev(vf, "driver_override"), "vfio-pci")
    sim.write(root, "sys/bus/pci/drivers/igbvf/unbind", vf)
    sim.write(root, "sys/bus/pci/drivers_probe", vf)
    sim.set_vf(root, "enp2s0f0", 0, mac="02:00:00:00:00:aa", vlan=7)
    return root


def test_round_trip_of_a_simulated_host(make_host, tmp_path: Path) -> None:
    src = busy_default(make_host)
    dest = tmp_path / "snap"
    sim.snapshot(src, dest)
    assert tree(dest) == tree(src)
    assert sim.link_info(dest, "vmbr0") == sim.link_info(src, "vmbr0")
    assert sim.vf_info(dest, "enp2s0f0") == sim.vf_info(src, "enp2s0f0")
    # the snapshot goes on with the kernel's rules
    assert errno_of(lambda: sim.write(dest, dev("0000:02:00.0", "sriov_numvfs"), "3")) == (
        errno.EBUSY
    )
    assert errno_of(lambda: sim.write(dest, dev("0000:02:00.0", "sriov_numvfs"), "8")) == (
        errno.ERANGE
    )
    sim.write(dest, dev("0000:02:00.0", "sriov_numvfs"), "0")
    assert not (dest / "sys/class/net/enp2s0f0v0").exists()
    assert os.listdir(dest / "dev/vfio") == ["vfio"]  # the vfio-bound VF went with them
    sim.write(dest, dev("0000:02:00.0", "sriov_numvfs"), "3")
    assert os.path.basename(os.readlink(dest / dev("0000:02:10.4", "driver"))) == "igbvf"
    assert rd(dest, dev("0000:02:10.4", "device")) == "0x10ca"


def test_snapshot_of_a_plain_tree_in_the_layout(make_host, tmp_path: Path) -> None:
    src = busy_default(make_host)
    plain = tmp_path / "plain"
    shutil.copytree(src, plain, symlinks=True, ignore=shutil.ignore_patterns(".vfctl-sim"))
    dest = tmp_path / "snap"
    sim.snapshot(plain, dest)
    assert tree(dest) == tree(src)
    assert sim.link_info(dest, "vmbr0")["addresses"] == []  # not in sysfs: not recorded
    sim.write(dest, dev("0000:01:00.0", "sriov_numvfs"), "63")
    assert rd(dest, dev("0000:01:00.0", "sriov_numvfs")) == "63"


def test_a_host_without_iommu_stays_without_groups(make_host, tmp_path: Path) -> None:
    src = make_host("minimal")
    plain = tmp_path / "plain"
    shutil.copytree(src, plain, symlinks=True, ignore=shutil.ignore_patterns(".vfctl-sim"))
    for bdf in os.listdir(plain / "sys/bus/pci/devices"):
        (plain / dev(bdf, "iommu_group")).unlink()
    shutil.rmtree(plain / "sys/kernel/iommu_groups")
    dest = tmp_path / "snap"
    sim.snapshot(plain, dest)
    sim.write(dest, dev("0000:01:00.0", "sriov_numvfs"), "2")
    assert not (dest / dev("0000:01:10.0", "iommu_group")).exists()
    assert os.listdir(dest / "sys/kernel/iommu_groups") == []


def test_snapshot_of_this_machine_reads_the_same_in_lspci(tmp_path: Path) -> None:
    real = Path("/sys/bus/pci/devices")
    lspci = shutil.which("lspci")
    if lspci is None or not real.is_dir() or not os.listdir(real):
        if required("VFCTL_SNAPSHOT_REAL"):
            pytest.fail("needs lspci and a real /sys/bus/pci")
        pytest.skip("no lspci or no PCI sysfs here")
    dest = tmp_path / "snap"
    sim.snapshot(Path("/"), dest)

    def run(*opts: str) -> str:
        return subprocess.run([lspci, *opts, "-vvv", "-nn"], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    assert run("-A", "linux-sysfs", "-O", f"sysfs.path={dest}/sys/bus/pci") == run(
        "-A", "linux-sysfs"
    )
