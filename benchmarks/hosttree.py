"""A big host root for end-to-end benchmarks: gentree's functions laid out as a real sysfs.

`ROOT/sys/bus/pci/devices/<bdf>` holds gentree's function directories (real config spaces);
on top of them this adds what a passthrough host's kernel shows, so vfctl reads what it must
read on a real host, not an empty tree:

- PFs: `sriov_*` attributes, `virtfnN` links, driver `igb`, one netdev each (`net/`,
  `sys/class/net/<if>` as the kernel links it), an IOMMU group;
- VFs: `physfn`, `driver_override` (`vfio-pci`, or `(null)` as the kernel shows it unset),
  an IOMMU group of their own; most are bound to vfio-pci (no netdev), the first
  ``NET_VFS`` of each PF to igbvf with a netdev;
- `sys/bus/pci/drivers/<drv>/<bdf>` links, as the kernel's driver core makes them.

Usage: python benchmarks/hosttree.py DIR PFS VFS_PER_PF
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gentree

STAMP = "hosttree v1\n"
NET_VFS = 2


def _link(target: str, at: Path) -> None:
    os.symlink(target, at)


def _bind(root: Path, bdf: str, drv: str) -> None:
    dev = root / "sys/bus/pci/devices" / bdf
    ddir = root / "sys/bus/pci/drivers" / drv
    ddir.mkdir(parents=True, exist_ok=True)
    _link(f"../../../bus/pci/drivers/{drv}", dev / "driver")
    _link(f"../../../../bus/pci/devices/{bdf}", ddir / bdf)


def _group(root: Path, bdf: str, n: int) -> None:
    g = root / "sys/kernel/iommu_groups" / str(n) / "devices"
    g.mkdir(parents=True)
    _link(f"../../../../bus/pci/devices/{bdf}", g / bdf)
    _link(f"../../../kernel/iommu_groups/{n}", root / "sys/bus/pci/devices" / bdf / "iommu_group")


def _netdev(root: Path, bdf: str, ifname: str) -> None:
    (root / "sys/bus/pci/devices" / bdf / "net" / ifname).mkdir(parents=True)
    cls = root / "sys/class/net"
    cls.mkdir(parents=True, exist_ok=True)
    _link(f"../../bus/pci/devices/{bdf}/net/{ifname}", cls / ifname)


def generate(root: Path, pfs: int, vfs: int) -> Path:
    """Create (or reuse) the host root; return it."""
    stamp = root / "STAMP"
    want = f"{STAMP}{pfs} {vfs}\n"
    if stamp.exists() and stamp.read_text() == want:
        return root
    if root.exists():
        import shutil

        shutil.rmtree(root)
    gentree.generate(root / "sys/bus/pci", pfs, vfs)
    devs = root / "sys/bus/pci/devices"
    group = 0
    for bus in range(1, pfs + 1):
        pf = f"0000:{bus:02x}:00.0"
        attrs = {"sriov_totalvfs": vfs, "sriov_numvfs": vfs, "sriov_offset": 1,
                 "sriov_stride": 1, "sriov_vf_device": "10ca", "sriov_drivers_autoprobe": 1,
                 "driver_override": "(null)"}  # fmt: skip
        for k, v in attrs.items():
            (devs / pf / k).write_text(f"{v}\n")
        _bind(root, pf, "igb")
        _netdev(root, pf, f"enp{bus}s0")
        _group(root, pf, group)
        group += 1
        for i in range(vfs):
            fn = i + 1
            vf = f"0000:{bus:02x}:{fn >> 3:02x}.{fn & 7}"
            _link(f"../{vf}", devs / pf / f"virtfn{i}")
            _link(f"../{pf}", devs / vf / "physfn")
            _group(root, vf, group)
            group += 1
            if i < NET_VFS:
                (devs / vf / "driver_override").write_text("(null)\n")
                _bind(root, vf, "igbvf")
                _netdev(root, vf, f"enp{bus}s0v{i}")
            else:
                (devs / vf / "driver_override").write_text("vfio-pci\n")
                _bind(root, vf, "vfio-pci")
    stamp.write_text(want)
    return root


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    print(generate(Path(argv[1]), int(argv[2]), int(argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
