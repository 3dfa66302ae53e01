"""Config-space batch parse: vfctl's C extension vs pure Python vs lspci vs a naive floor.

Run with `make bench` (or `.venv/bin/python benchmarks/bench_configspace.py`).  Prints a
table and the ratios against the targets; exits 0 even when a target is MISSED.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import gentree  # noqa: E402

from vfctl.pci import configspace  # noqa: E402

BENCH = ROOT / ".bench"
TREES = [(4, 255), (64, 255)]  # 1,024 and 16,384 functions


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def build_floor() -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    exe = BENCH / "floor"
    src = Path(__file__).parent / "floor.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_floor(exe: Path, paths: list[str], repeats: int) -> float:
    with tempfile.NamedTemporaryFile("w", dir=BENCH, suffix=".paths", delete=False) as f:
        f.write("\n".join(paths) + "\n")
    try:
        out = subprocess.run(
            [str(exe), f.name, str(repeats)], capture_output=True, text=True, check=True
        )
    finally:
        os.unlink(f.name)
    return float(out.stdout.split()[0])


def run_lspci(tree: Path, repeats: int) -> float | None:
    if shutil.which("lspci") is None:
        return None
    cmd = ["lspci", "-vvv", "-A", "linux-sysfs", "-O", f"sysfs.path={tree}"]

    def once() -> None:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    return best_of(once, repeats)[0]


def lspci_bytes_per_device(tree: Path, bdf: str) -> tuple[int, int] | None:
    """What lspci -vvv actually preads from one config file (strace), when strace exists."""
    if shutil.which("strace") is None or shutil.which("lspci") is None:
        return None
    cmd = ["strace", "-e", "trace=pread64", "lspci", "-vvv", "-A", "linux-sysfs",
           "-O", f"sysfs.path={tree}", "-s", bdf]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stderr
    sizes = [
        int(line.rsplit("=", 1)[1])
        for line in out.splitlines()
        if line.startswith("pread64(") and "= " in line
    ]
    return (sum(sizes), len(sizes)) if sizes else None


def fmt_t(t: float | None) -> str:
    return "n/a" if t is None else f"{t * 1e3:9.1f} ms"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def bench_tree(pfs: int, vfs: int, floor_exe: Path | None) -> list[tuple[str, str, str, str]]:
    tree = BENCH / f"tree-{pfs}x{vfs}"
    t0 = time.perf_counter()
    paths = gentree.generate(tree, pfs, vfs)
    gen = time.perf_counter() - t0
    n = len(paths)
    reps = 5 if n <= 2048 else 3
    print(f"\n== {n} functions ({pfs} PFs x {vfs} VFs) under {tree} (tree ready in {gen:.1f} s)")

    c_time = py_time = None
    docs: list[dict[str, Any]] = []
    if configspace._C_PARSE_FILES is not None:
        configspace.parse_files_c(paths)  # warm the page cache
        c_time, docs = best_of(lambda: configspace.parse_files_c(paths), reps)
    py_time, py_docs = best_of(lambda: configspace.parse_files_python(paths), max(1, reps - 2))
    if not docs:
        docs = py_docs
    elif docs != py_docs:
        print("!! C and Python documents differ on this tree")
    lspci_time = run_lspci(tree, max(1, reps - 2))
    floor_time = run_floor(floor_exe, paths, reps) if floor_exe else None

    pf_docs = [d for d in docs if d.get("sriov")]
    vf_docs = [d for d in docs if d.get("vendor_id") == "ffff"]
    per_dev_bytes = statistics.mean(d["bytes_read"] for d in docs)
    per_dev_reads = statistics.mean(d["reads"] for d in docs)
    pf_bytes = max(d["bytes_read"] for d in pf_docs)
    vf_bytes = max(d["bytes_read"] for d in vf_docs) if vf_docs else 0
    lspci_pf = lspci_bytes_per_device(tree, "01:00.0")
    lspci_vf = lspci_bytes_per_device(tree, "01:00.1")

    rows = [
        (
            "vfctl C batch parse",
            fmt_t(c_time),
            f"{(c_time or 0) / n * 1e6:7.2f} us/fn" if c_time else "",
            "",
        ),
        ("vfctl pure-Python parse", fmt_t(py_time), f"{py_time / n * 1e6:7.2f} us/fn", ""),
        (
            "lspci -vvv -A linux-sysfs",
            fmt_t(lspci_time),
            f"{(lspci_time or 0) / n * 1e6:7.2f} us/fn" if lspci_time else "",
            "",
        ),
        (
            "floor: open+pread 4096+close",
            fmt_t(floor_time),
            f"{(floor_time or 0) / n * 1e6:7.2f} us/fn" if floor_time else "",
            "",
        ),
        (
            "vfctl bytes/reads per function",
            f"{per_dev_bytes:9.1f} B",
            f"{per_dev_reads:5.1f} preads",
            "mean over all",
        ),
        ("vfctl bytes per SR-IOV PF / VF", f"{pf_bytes:9d} B", f"{vf_bytes} B per VF", ""),
        (
            "lspci -vvv bytes per PF (strace)",
            f"{lspci_pf[0]:9d} B" if lspci_pf else "n/a",
            f"{lspci_pf[1]} preads" if lspci_pf else "",
            "4096 B = full read as root",
        ),
        (
            "lspci -vvv bytes per VF (strace)",
            f"{lspci_vf[0]:9d} B" if lspci_vf else "n/a",
            f"{lspci_vf[1]} preads" if lspci_vf else "",
            "",
        ),
    ]
    for r in rows:
        print(f"  {r[0]:<34} {r[1]:>14}  {r[2]:<20} {r[3]}")

    checks: list[tuple[str, str, str, str]] = []

    def ratio(label: str, value: float | None, target: str, ok: bool | None) -> None:
        checks.append(
            (
                f"{n:>6} fn: {label}",
                "n/a" if value is None else f"{value:8.2f}x",
                target,
                verdict(ok),
            )
        )

    speedup = lspci_time / c_time if (lspci_time and c_time) else None
    ratio("lspci -vvv / C", speedup, ">= 10x", None if speedup is None else speedup >= 10)
    slow = py_time / c_time if c_time else None
    ratio("Python / C", slow, ">= 5x", None if slow is None else slow >= 5)
    fl = c_time / floor_time if (c_time and floor_time) else None
    ratio("C / floor", fl, "<= 3x", None if fl is None else fl <= 3)
    checks.append(
        (
            f"{n:>6} fn: bytes per SR-IOV PF",
            f"{pf_bytes:8d} B",
            "<= 512 B",
            verdict(pf_bytes <= 512),
        )
    )
    return checks


def main() -> int:
    BENCH.mkdir(exist_ok=True)
    print(
        f"C extension: {'yes' if configspace._C_PARSE_FILES else 'NOT BUILT'}; cpus: {os.cpu_count()}"
    )
    floor_exe = build_floor()
    checks: list[tuple[str, str, str, str]] = []
    for pfs, vfs in TREES:
        checks += bench_tree(pfs, vfs, floor_exe)
    print("\n== targets")
    for label, value, target, v in checks:
        print(f"  {label:<38} {value:>11}  target {target:<8} {v}")
    missed = [c for c in checks if c[3] == "MISSED"]
    print(f"\n{len(missed)} target(s) MISSED" if missed else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
