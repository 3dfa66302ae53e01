"""Trees for the batch VF reads' tests: crafted (every odd entry) and random ones."""

from __future__ import annotations

import os
import random
from pathlib import Path


def hostile(root: Path) -> list[str]:
    """VF directories with every odd thing a copied or crafted tree can hold."""
    outside = root.parent / "outside"
    outside.write_text("secret\n")
    names = []

    def vf(name: str) -> Path:
        d = root / name
        d.mkdir()
        names.append(name)
        return d

    d = vf("0000:00:00.1")
    os.mkfifo(d / "driver_override")  # a FIFO with no writer: must not block
    os.symlink("../../drivers/vfio-pci", d / "driver")
    d = vf("0000:00:00.2")
    os.symlink(outside, d / "driver_override")  # a symlink: followed, as Host.read does
    os.symlink("foo/", d / "iommu_group")  # basename ""
    (d / "net").write_text("not a directory")
    d = vf("0000:00:00.3")
    (d / "driver_override").write_bytes(b"\xff\xfe bad utf-8 \n" + b"x" * 70000)  # > 64 KiB
    (d / "driver").write_text("a file, not a link")
    (d / "net").mkdir()
    for i in range(300):  # more than one getdents buffer (8 KiB)
        (d / "net" / f"eth{i:04d}-with-a-long-name-to-fill-the-buffer").mkdir()
    d = vf("0000:00:00.4")
    (d / "driver_override").mkdir()
    os.symlink("../../kernel/iommu_groups/17", d / "iommu_group")
    (d / "net" / "\udcffbad").mkdir(parents=True)  # a non-UTF-8 netdev name
    d = vf("0000:00:00.5")
    (d / "driver_override").write_text("")
    os.symlink("x" * 200 + "/" + "y" * 200, d / "driver")
    names.append("0000:00:00.6")  # no directory at all
    # group names columns() must keep as text (only 1-18 ASCII digits become ints), and more
    # distinct override texts than its cache holds, repeated, some one byte apart
    groups = ["007", "1" * 18, "9" * 19, "\u0661\u0662", "12a", "-1", "+3", " 4", "0"]
    texts = [b"(null)\n", b"vfio-pci\n", b"vfio-pci", b"vfio-pcj\n", b"\xff\n", b"a", b""]
    for i in range(24):
        d = vf(f"0000:00:01.{i}")
        (d / "driver_override").write_bytes(texts[(i * 5) % len(texts)] if i % 3 else texts[0])
        os.symlink(f"../../kernel/iommu_groups/{groups[i % len(groups)]}", d / "iommu_group")
    return names


def random_tree(root: Path, rng: random.Random, n: int) -> list[str]:
    """``n`` VF-like directories (plus some names that do not exist) with random entries."""
    names = []
    kinds = ["file", "empty", "link", "dangling", "dir", "fifo", "absent"]
    for i in range(n):
        name = f"0000:{i >> 8:02x}:{(i >> 3) & 0x1F:02x}.{i & 7}"
        names.append(name)
        if rng.random() < 0.05:
            continue  # no directory
        d = root / name
        d.mkdir()
        for attr in ("driver", "driver_override", "iommu_group", "net"):
            kind = rng.choice(kinds)
            p = d / attr
            if kind == "file":
                p.write_bytes(rng.randbytes(rng.choice([1, 8, 100, 5000])))
            elif kind == "empty":
                p.write_bytes(b"")
            elif kind == "link":
                os.symlink("../" * rng.randint(0, 3) + "x" * rng.randint(0, 40) + f"/{i}", p)
            elif kind == "dangling":
                os.symlink(f"missing-{i}", p)
            elif kind == "dir":
                p.mkdir()
                for k in range(rng.randint(0, 5)):
                    (p / f"eth{k}{rng.choice(['', 'v', '-long-name'])}").mkdir()
            elif kind == "fifo":
                os.mkfifo(p)
    return names


def driver_tree(root: Path, rng: random.Random | None = None) -> tuple[list[str], list[str]]:
    """A ``drivers`` directory with everything odd a listing can meet, and names to look up:
    (drivers in listing order, names). Devices bound in two drivers (the last one's), names
    without ':' (bind, module …: never a device), a driver that is a file, a FIFO or missing,
    a symlinked driver, undecodable and long names, names asked twice."""
    rng = rng or random.Random(7)
    devs = [f"0000:{b:02x}:{d:02x}.{f}" for b in range(3) for d in range(8) for f in range(8)]
    odd = ["0000:ff:1f.\udcff", "x:" + "y" * 250, ":"]
    drivers = ["igbvf", "vfio-pci", "ixgbevf", "a-file", "a-fifo", "missing", "linked", "empty"]
    for drv in ("igbvf", "vfio-pci", "ixgbevf", "empty"):
        (root / drv).mkdir()
    for name in ("bind", "unbind", "module", "new_id", "uevent"):
        for drv in ("igbvf", "vfio-pci"):
            (root / drv / name).write_text("")
    for dev in devs + odd:
        for drv in rng.sample(["igbvf", "vfio-pci", "ixgbevf"], rng.randrange(0, 3)):
            os.symlink(f"../../../devices/{dev}", root / drv / dev)
    (root / "a-file").write_text("0000:00:00.0\n")
    os.mkfifo(root / "a-fifo")
    os.symlink("vfio-pci", root / "linked")
    names = devs + odd + ["", "0000:00:00.0", devs[5], devs[5], "bind", "module", "0000:99:00.0"]
    rng.shuffle(names)
    return drivers, names
