"""Run the batch VF reads' C extension (a given .so, possibly sanitized) against its Python
twin over crafted and random trees, also under a tiny descriptor limit (the batch keeps
descriptors open and must flush them when open fails with EMFILE).

Usage: python vfscan_driver.py EXTENSION.so WORKDIR TREES.  Prints "N mismatches"; exits 1 on any.
"""

from __future__ import annotations

import contextlib
import random
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))  # tests/: the shared asan helper

from asan import load
from vfscan_trees import driver_tree, hostile, random_tree

from vfctl.host import vfscan


def main() -> int:
    so, work, trees = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    ext = load(so, "vfctl.host._vfscan")
    rng = random.Random(20261130)
    cases: list[tuple[Path, list[str]]] = []
    d = work / "hostile"
    d.mkdir(parents=True)
    cases.append((d, hostile(d)))
    for t in range(trees):
        d = work / f"random{t}"
        d.mkdir()
        cases.append((d, random_tree(d, rng, 200)))
    bad = 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (soft, 24):  # 24: EMFILE after a few VFs, with the batch's fds still open
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        for root, names in cases:
            for flags in (0, 1, 2, 3):
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                want = vfscan.scan_python(str(root), names, flags)
                want_cols = vfscan.columns_python(str(root), names, flags)
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
                if ext.scan(str(root), names, flags) != want:
                    bad += 1
                    print(f"scan mismatch: {root} flags={flags} limit={limit}")
                if ext.columns(str(root), names, flags) != want_cols:
                    bad += 1
                    print(f"columns mismatch: {root} flags={flags} limit={limit}")
            paths = [f"{n}/{a}" for n in names for a in ("driver", "iommu_group", "net")]
            files = [f"{n}/{a}" for n in names for a in ("driver_override", "driver", "net")]
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            want_reads = vfscan.reads_python(str(root), files)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            if ext.reads(str(root), files) != want_reads:
                bad += 1
                print(f"reads mismatch: {root} limit={limit}")
            for full in (False, True):
                if ext.links(str(root), paths, full) != vfscan.links_python(str(root), paths, full):
                    bad += 1
                    print(f"links mismatch: {root} full={full}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for t in range(max(2, trees // 4)):  # owners(): each name's driver from driver listings
        d = work / f"drivers{t}"
        d.mkdir()
        drivers, names = driver_tree(d, random.Random(t))
        for drvs in (drivers, drivers[::-1], []):
            if ext.owners(str(d), drvs, names) != vfscan.owners_python(str(d), drvs, names):
                bad += 1
                print(f"owners mismatch: {d} drivers={drvs}")
    for bad_arg in ([1, 2], ["a\0b"], "not a list", [b"x" * 5000]):
        with contextlib.suppress(TypeError, ValueError, OSError):
            ext.scan(str(work), bad_arg)  # refused or read as absent, never a crash
        with contextlib.suppress(TypeError, ValueError, OSError):
            ext.columns(str(work), bad_arg, 3)
        with contextlib.suppress(TypeError, ValueError, OSError):
            ext.reads(str(work), bad_arg)
        with contextlib.suppress(TypeError, ValueError, OSError):
            ext.owners(str(work), bad_arg, ["x"])
        with contextlib.suppress(TypeError, ValueError, OSError):
            ext.owners(str(work), ["hostile"], bad_arg)
    print(f"{bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
