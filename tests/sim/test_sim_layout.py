"""The simulated host is laid out exactly like real sysfs (DESIGN §3 Host root)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from simhelpers import dev, rd

from vfctl import sim
from vfctl.errors import UsageError

# What each preset promises for its SR-IOV PFs:
# bdf -> (driver, sriov_totalvfs, cap TotalVFs, offset, stride, vf device)
PFS = {
    "default": {
        "0000:01:00.0": ("ixgbe", 63, 64, 128, 2, "10ed"),
        "0000:01:00.1": ("ixgbe", 63, 64, 128, 2, "10ed"),
        "0000:02:00.0": ("igb", 7, 8, 128, 2, "10ca"),
        "0000:02:00.1": ("igb", 7, 8, 128, 2, "10ca"),
    },
    "minimal": {"0000:01:00.0": ("igb", 7, 8, 128, 2, "10ca")},
    "lab": {
        "0000:01:00.0": ("igb", 7, 8, 128, 2, "10ca"),
        "0000:02:00.0": ("nvme", 4, 4, 1, 1, "0010"),
        "0000:03:00.0": ("igb", 7, 8, 128, 2, "10ca"),
    },
}
ATTRS = ["config", "vendor", "device", "class", "subsystem_vendor", "subsystem_device",
         "revision", "irq", "resource", "numa_node", "local_cpulist", "enable",
         "driver_override", "modalias"]  # fmt: skip


@pytest.mark.parametrize("preset", sorted(sim.PRESETS))
def test_every_device_is_a_relative_bus_link_into_sys_devices(make_host, preset: str) -> None:
    root = make_host(preset)
    bus = root / "sys/bus/pci/devices"
    names = sorted(os.listdir(bus))
    assert names, "no PCI devices"
    for bdf in names:
        link = os.readlink(bus / bdf)
        assert link.startswith("../../../devices/pci0000:00/"), link
        real = Path(os.path.realpath(bus / bdf))
        assert real.is_dir() and real.name == bdf
        assert (root / "sys/devices/pci0000:00") in real.parents
        for a in ATTRS:
            assert (real / a).exists(), f"{bdf} lacks {a}"
        cfg = (real / "config").read_bytes()
        assert len(cfg) == 4096
        vendor, device = struct.unpack_from("<HH", cfg, 0)
        assert f"0x{vendor:04x}" == rd(real, "vendor")
        assert f"0x{device:04x}" == rd(real, "device")
        cls = rd(real, "class")
        assert len(cls) == 8 and cls.startswith("0x")
        assert int(cls, 16) == int.from_bytes(cfg[9:12], "little")
        assert rd(real, "driver_override") == "(null)"
        group = os.readlink(real / "iommu_group")
        assert group.startswith("../") and "/kernel/iommu_groups/" in group
        gdir = Path(os.path.realpath(real / "iommu_group"))
        assert os.path.realpath(gdir / "devices" / bdf) == str(real)
        if (real / "driver").is_symlink():
            ddir = Path(os.path.realpath(real / "driver"))
            assert ddir.parent == root / "sys/bus/pci/drivers"
            assert os.path.realpath(ddir / bdf) == str(real)
            assert rd(real, "enable") == "1"
        lines = (real / "resource").read_text().splitlines()
        assert len(lines) == (17 if cls.startswith("0x0604") else 13)


@pytest.mark.parametrize("preset", sorted(sim.PRESETS))
def test_sriov_attributes_match_the_preset(make_host, preset: str) -> None:
    root = make_host(preset)
    for bdf, (drv, total, cap_total, off, stride, vfdev) in PFS[preset].items():
        assert os.path.basename(os.readlink(root / dev(bdf, "driver"))) == drv
        assert rd(root, dev(bdf, "sriov_totalvfs")) == str(total)
        assert rd(root, dev(bdf, "sriov_numvfs")) == "0"
        assert rd(root, dev(bdf, "sriov_offset")) == str(off)
        assert rd(root, dev(bdf, "sriov_stride")) == str(stride)
        assert rd(root, dev(bdf, "sriov_vf_device")) == vfdev
        assert rd(root, dev(bdf, "sriov_drivers_autoprobe")) == "1"
        cfg = (root / dev(bdf, "config")).read_bytes()
        pos = 0x100
        while True:
            hdr = struct.unpack_from("<I", cfg, pos)[0]
            if hdr & 0xFFFF == 0x10:
                break
            pos = hdr >> 20
            assert pos, "no SR-IOV capability"
        assert struct.unpack_from("<H", cfg, pos + 0x0E)[0] == cap_total
        assert struct.unpack_from("<H", cfg, pos + 0x14)[0] == off
        assert struct.unpack_from("<H", cfg, pos + 0x1A)[0] == int(vfdev, 16)
    sriov_devs = {b for b in os.listdir(root / "sys/bus/pci/devices")
                  if (root / dev(b, "sriov_totalvfs")).exists()}  # fmt: skip
    assert sriov_devs == set(PFS[preset])


def test_default_host_network_and_groups(make_host) -> None:
    root = make_host("default")
    net = root / "sys/class/net"
    assert sorted(os.listdir(net)) == [
        "enp1s0f0", "enp1s0f1", "enp2s0f0", "enp2s0f1", "enp3s0", "lo", "vmbr0",
    ]  # fmt: skip
    assert os.readlink(net / "vmbr0") == "../../devices/virtual/net/vmbr0"
    assert os.readlink(net / "enp1s0f0").endswith("/0000:00:01.0/0000:01:00.0/net/enp1s0f0")
    assert (net / "vmbr0/bridge").is_dir()
    assert os.path.realpath(net / "vmbr0/brif/enp3s0") == os.path.realpath(net / "enp3s0/brport")
    assert os.path.basename(os.readlink(net / "enp3s0/master")) == "vmbr0"
    assert rd(net, "enp3s0/address") == "00:25:90:1e:2a:3b"
    assert rd(net, "enp1s0f0/operstate") == "up"
    assert rd(net, "enp2s0f1/operstate") == "down"
    assert os.path.realpath(net / "enp3s0/device") == os.path.realpath(root / dev("0000:03:00.0"))
    # the 82576's two ports share one IOMMU group; every other function is alone
    g = {b: os.path.basename(os.readlink(root / dev(b, "iommu_group")))
         for b in os.listdir(root / "sys/bus/pci/devices")}  # fmt: skip
    assert g["0000:02:00.0"] == g["0000:02:00.1"]
    others = [v for k, v in g.items() if not k.startswith("0000:02:00.")]
    assert len(set(others)) == len(others) and g["0000:02:00.0"] not in others
    assert sorted(os.listdir(root / f"sys/kernel/iommu_groups/{g['0000:02:00.0']}/devices")) == [
        "0000:02:00.0",
        "0000:02:00.1",
    ]
    # root ports are PCI devices too, bound to pcieport
    assert rd(root, dev("0000:00:1c.0", "class")) == "0x060400"
    assert os.path.basename(os.readlink(root / dev("0000:00:1c.0", "driver"))) == "pcieport"
    # management IP on the bridge, not on the port
    info = sim.link_info(root, "vmbr0")
    assert info["addresses"] == ["192.0.2.10/24"] and info["default_route"]
    port = sim.link_info(root, "enp3s0")
    assert port["master"] == "vmbr0" and port["addresses"] == [] and not port["default_route"]


def test_drivers_modules_and_misc_files(make_host) -> None:
    root = make_host("default")
    drivers = root / "sys/bus/pci/drivers"
    assert sorted(os.listdir(drivers)) == ["igb", "ixgbe", "pcieport"]
    for d in ("igb", "ixgbe"):
        for f in ("bind", "unbind", "new_id", "remove_id"):
            assert (drivers / d / f).is_file()
        assert os.readlink(drivers / d / "module") == f"../../../../module/{d}"
        assert (root / "sys/module" / d).is_dir()
    assert sorted(x for x in os.listdir(drivers / "igb") if x.startswith("0000:")) == [
        "0000:02:00.0", "0000:02:00.1", "0000:03:00.0",
    ]  # fmt: skip
    assert not (root / "sys/module/vfio_pci").exists()
    assert not (drivers / "vfio-pci").exists()
    assert (root / "sys/bus/pci/drivers_probe").is_file()
    assert "intel_iommu=on" in rd(root, "proc/cmdline")
    assert rd(root, "etc/hostname") == "pve1"
    state = json.loads((root / ".vfctl-sim/state.json").read_text())
    assert state["preset"] == "default"
    assert (root / ".vfctl-sim/writes.log").read_text() == ""
    assert os.listdir(root / "dev/vfio") == []


def test_init_refuses_foreign_dirs_and_unknown_presets(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious").write_text("x")
    with pytest.raises(UsageError):
        sim.init(foreign, "minimal")
    assert (foreign / "precious").read_text() == "x"
    with pytest.raises(UsageError):
        sim.init(tmp_path / "new", "nonesuch")
    root = tmp_path / "again"
    sim.init(root, "lab")
    sim.write(root, dev("0000:01:00.0", "sriov_numvfs"), "2")
    sim.init(root, "minimal")  # an earlier simulated host is replaced
    assert sorted(os.listdir(root / "sys/bus/pci/devices")) == [
        "0000:00:00.0", "0000:00:01.0", "0000:01:00.0",
    ]  # fmt: skip
    assert set(sim.PRESETS) == {"default", "minimal", "lab"}
    assert all(isinstance(v, str) and v for v in sim.PRESETS.values())
