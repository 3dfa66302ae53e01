"""pciutils reads a simulated host like a real one, and sees the SR-IOV fields we define."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from simhelpers import dev, rd, required

from vfctl import sim
from vfctl.sim import cfgbuild

DATA = Path(__file__).parent / "data"


def lspci(root: Path, *args: str) -> str:
    exe = shutil.which("lspci")
    if exe is None:
        if required("VFCTL_LSPCI"):
            pytest.fail("lspci (pciutils) is required but missing")
        pytest.skip("lspci (pciutils) not installed")
    proc = subprocess.run(
        [exe, "-A", "linux-sysfs", "-O", f"sysfs.path={root}/sys/bus/pci", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return proc.stdout


def sriov_of(text: str) -> dict[str, int | str]:
    m1 = re.search(r"Total VFs: (\d+), Number of VFs: (\d+)", text)
    m2 = re.search(r"VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-f]{4})", text)
    m3 = re.search(r"IOVCtl:\s+Enable([+-]).*MSE([+-])", text)
    assert m1 and m2 and m3, text
    return {"total": int(m1[1]), "num": int(m1[2]), "offset": int(m2[1]),
            "stride": int(m2[2]), "vf_device": m2[3], "enable": m3[1], "mse": m3[2]}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(sim.PRESETS))
def test_lspci_shows_the_preset_sriov_fields(make_host, preset: str) -> None:
    root = make_host(preset)
    pfs = [b for b in sorted(os.listdir(root / "sys/bus/pci/devices"))
           if (root / dev(b, "sriov_totalvfs")).exists()]  # fmt: skip
    first = pfs[0]
    sim.write(root, dev(first, "sriov_numvfs"), "2")
    listing = lspci(root, "-n")
    assert len(listing.splitlines()) == len(os.listdir(root / "sys/bus/pci/devices"))
    for pf in pfs:
        got = sriov_of(lspci(root, "-vvv", "-s", pf))
        cap_total = struct.unpack_from(
            "<H", (root / dev(pf, "config")).read_bytes(),
            cfgbuild.find_ext_cap((root / dev(pf, "config")).read_bytes(), 0x10) + 0x0E,  # type: ignore[operator]
        )[0]  # fmt: skip
        num = int(rd(root, dev(pf, "sriov_numvfs")))
        assert got == {
            "total": cap_total,
            "num": num,
            "offset": int(rd(root, dev(pf, "sriov_offset"))),
            "stride": int(rd(root, dev(pf, "sriov_stride"))),
            "vf_device": rd(root, dev(pf, "sriov_vf_device")),
            "enable": "+" if num else "-",
            "mse": "+" if num else "-",
        }
        drv = os.path.basename(os.readlink(root / dev(pf, "driver")))
        assert f"Kernel driver in use: {drv}" in lspci(root, "-vvv", "-s", pf)
    vf = os.path.basename(os.readlink(root / dev(first, "virtfn1")))
    text = lspci(root, "-vvv", "-nn", "-s", vf)
    ven, vfdev = rd(root, dev(vf, "vendor"))[2:], rd(root, dev(vf, "device"))[2:]
    assert f"[{ven}:{vfdev}]" in text.splitlines()[0]  # ids from sysfs, as for real VFs
    assert "[virtual]" in text  # VF BARs live in the PF's SR-IOV capability
    group = os.path.basename(os.readlink(root / dev(vf, "iommu_group")))
    assert f"IOMMU group: {group}" in text


def _parse_hex(path: Path) -> bytes:
    out = bytearray()
    for line in path.read_text().splitlines():
        m = re.match(r"^[0-9a-f]+: ((?:[0-9a-f]{2} ?){16})$", line.strip())
        if m:
            out += bytes.fromhex(m[1])
    return bytes(out)


def _chain(cfg: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    std, ext = [], []
    pos = cfg[0x34]
    while pos:
        std.append((pos, cfg[pos]))
        pos = cfg[pos + 1]
    pos = 0x100
    while pos:
        hdr = struct.unpack_from("<I", cfg, pos)[0]
        ext.append((pos, hdr & 0xFFFF))
        pos = hdr >> 20
    return std, ext


def test_built_82576_has_the_real_dumps_layout(minimal: Path) -> None:
    real = _parse_hex(DATA / "8086_10c9_1.hex")
    built = (minimal / dev("0000:01:00.0", "config")).read_bytes()
    assert len(real) == len(built) == 4096
    assert _chain(built) == _chain(real)
    assert built[:4] == real[:4] and built[0x2C:0x30] == real[0x2C:0x30]  # ids, subsystem
    rs, bs = cfgbuild.sriov_fields(real), cfgbuild.sriov_fields(built)
    assert rs and bs
    for k in ("offset_in_config", "total", "initial", "vf_stride", "vf_device"):
        assert rs[k] == bs[k], k
    # the lab's QEMU 82576 (and the simulator) put VF 0 at offset 128; this board said 384
    assert (rs["vf_offset"], bs["vf_offset"]) == (384, 128)
