"""Generate big sysfs-like PCI trees (`DIR/devices/<bdf>/config, vendor, ...`) for benchmarks.

The PF config space is a real one (Intel 82576 from tests/pci/data: PM, MSI, MSI-X, PCIe,
AER, DSN, ARI, SR-IOV), edited to 255 enabled VFs with ARI; each VF's config space is the
PF's without SR-IOV, with vendor/device reading ffff as the PCIe spec requires.  The
directory holds what `lspci -A linux-sysfs -O sysfs.path=DIR` opens for each function.

Usage: python benchmarks/gentree.py DIR PFS VFS_PER_PF
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vfctl.pci import dumpfile  # noqa: E402
from vfctl.pci import regs as R  # noqa: E402

TEMPLATE = ROOT / "tests" / "pci" / "data" / "8086_10c9_1.hex"
STAMP = "gentree v1\n"
ARI_AT, SRIOV_AT = 0x150, 0x160
VF_DEVICE = 0x10CA


def pf_config(num_vfs: int) -> bytes:
    b = bytearray(dumpfile.load_dump(TEMPLATE.read_bytes()))
    s = SRIOV_AT
    struct.pack_into(
        "<H", b, s + R.PCI_IOV_CTRL, R.PCI_IOV_CTRL_VFE | R.PCI_IOV_CTRL_MSE | R.PCI_IOV_CTRL_ARI
    )
    for reg in (R.PCI_IOV_INITIAL_VF, R.PCI_IOV_TOTAL_VF, R.PCI_IOV_NUM_VF):
        struct.pack_into("<H", b, s + reg, num_vfs)
    struct.pack_into("<H", b, s + R.PCI_IOV_VF_OFFSET, 1)
    struct.pack_into("<H", b, s + R.PCI_IOV_VF_STRIDE, 1)
    return bytes(b)


def vf_config(pf: bytes) -> bytes:
    b = bytearray(pf)
    struct.pack_into("<HH", b, R.PCI_VENDOR_ID, 0xFFFF, 0xFFFF)
    b[0x10:0x28] = bytes(0x18)  # a VF's own BARs read 0; its memory is the PF's VF BARs
    ari = struct.unpack_from("<I", b, ARI_AT)[0] & 0x000FFFFF  # end the chain before SR-IOV
    struct.pack_into("<I", b, ARI_AT, ari)
    b[SRIOV_AT : SRIOV_AT + 0x40] = bytes(0x40)
    return bytes(b)


def _write_function(d: Path, config: bytes, vendor: int, device: int, irq: int) -> None:
    d.mkdir(parents=True)
    (d / "config").write_bytes(config)
    files = {
        "vendor": f"0x{vendor:04x}",
        "device": f"0x{device:04x}",
        "class": f"0x{config[0x0B]:02x}{config[0x0A]:02x}{config[0x09]:02x}",
        "revision": f"0x{config[0x08]:02x}",
        "subsystem_vendor": "0x8086",
        "subsystem_device": "0xa03c",
        "irq": str(irq),
        "numa_node": "0",
        "resource": "\n".join(["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 13),
    }
    for name, text in files.items():
        (d / name).write_text(text + "\n")


def generate(root: Path, pfs: int, vfs: int) -> list[str]:
    """Create (or reuse) the tree; return the config paths, PFs first within each bus."""
    devices = root / "devices"
    stamp = root / "STAMP"
    want = f"{STAMP}{pfs} {vfs}\n"
    bdfs = [
        f"0000:{bus:02x}:{(fn >> 3):02x}.{fn & 7}"
        for bus in range(1, pfs + 1)
        for fn in range(vfs + 1)
    ]
    if stamp.exists() and stamp.read_text() == want:
        return [str(devices / b / "config") for b in bdfs]
    if root.exists():
        shutil.rmtree(root)
    pf = pf_config(vfs)
    vf = vf_config(pf)
    for i, bdf in enumerate(bdfs):
        is_pf = bdf.endswith(":00.0")
        _write_function(
            devices / bdf,
            pf if is_pf else vf,
            0x8086,
            0x10C9 if is_pf else VF_DEVICE,
            0 if not is_pf else 16 + i % 8,
        )
    stamp.write_text(want)
    return [str(devices / b / "config") for b in bdfs]


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    paths = generate(Path(argv[1]), int(argv[2]), int(argv[3]))
    print(f"{len(paths)} functions under {os.path.abspath(argv[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
