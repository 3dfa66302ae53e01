"""End-to-end `vfctl list` and friends, each against a baseline measured in the same run.

Big host: hosttree's 128 PFs x 128 VFs (16,384 VFs, real PF config spaces, drivers, groups,
driver_override, netdevs), `vfctl list --all --json` against `lspci -vvv` on the same tree and
against floor_vf.c, the syscalls no VF listing can skip (see that file). Typical host: the
`default` simulated preset with 64 VFs (32 on each 82599 port), against `python -c pass`.
Also: syscalls per VF (strace -c) and peak RSS per row. Prints ok/MISSED; always exits 0.
vfctl and `python -c pass` run as an installed package runs (benchlib.installed).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import benchlib as B  # noqa: E402
import hosttree  # noqa: E402

PFS, VFS = 128, 128
N = int(os.environ.get("VFCTL_BENCH_N", "7"))


def _env(root: Path) -> dict[str, str]:
    return B.child_env(VFCTL_ROOT=str(root), VFCTL_BACKEND="none")


def _floor(devdir: Path, fstat: bool) -> list[str]:
    exe = ROOT / ".bench" / "floor_vf"
    src = ROOT / "benchmarks" / "floor_vf.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    pfs = ROOT / ".bench" / "floor_vf.pfs"
    # hosttree's PFs: VFs at offset 1, stride 1 (the floor derives their addresses, as vfctl)
    pfs.write_text("".join(f"0000:{b:02x}:00.0 {VFS} 1 1\n" for b in range(1, PFS + 1)))
    return [str(exe), str(devdir), str(pfs), "1", str(int(fstat))]


def _strace_calls(cmd: list[str], env: dict[str, str]) -> tuple[int, dict[str, int]]:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        subprocess.run(["strace", "-f", "-c", "-o", out.name, *cmd], env=env,
                       stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        by: dict[str, int] = {}
        for line in out.read().splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m and m[2] != "total":
                by[m[2]] = int(m[1])
    return sum(by.values()), by


# the per-VF reads of discovery's batch, as discover_vfs makes them for many VFs: the scan
# (as columns, since the fifth round) with driver and netdevs taken from the bulk listings (addresses are derived from the PF's
# offset/stride: no virtfnN readlink per VF since the fourth round); argv: directory, repetitions
_BATCH = r"""
import os, sys
from vfctl.host import vfscan
d, k = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(d))
vfs = [a for a in names if os.path.exists(f"{d}/{a}/physfn")][:64] or names
addrs = vfs * k
vfscan.columns(d, addrs, vfscan.SKIP_DRIVER | vfscan.SKIP_NET)
print(len(vfs), int(vfscan.checks(d)))
"""


def batch_per_vf(devdir: str, env: dict[str, str], k: int = 500) -> tuple[float, str, int, bool]:
    """Syscalls per VF of the batches alone (a run with k repetitions less one with none)."""
    cmd = [sys.executable, "-c", _BATCH, devdir]
    n, checks = map(int, subprocess.run([*cmd, "0"], env=env, capture_output=True, text=True,
                                        check=True).stdout.split())  # fmt: skip
    many, by_many = _strace_calls([*cmd, str(k)], env)
    none, by_none = _strace_calls([*cmd, "0"], env)
    by = {c: (v - by_none.get(c, 0)) / (n * k) for c, v in by_many.items()}
    top = ", ".join(f"{c} {v:.3f}" for c, v in sorted(by.items(), key=lambda x: -x[1]) if v > 0.0005)
    return (many - none) / (n * k), top, n, bool(checks)


def sysfs_rows(tree: Path) -> None:
    """Syscalls per VF of the batches on this machine's real /sys and on the bench tree."""
    env = B.child_env()
    print("\n== discovery's per-VF batch alone (the scan; addresses derived), syscalls per VF: "
          "strace -c, a run less a run without VFs ==")  # fmt: skip
    real = "/sys/bus/pci/devices"
    if os.path.isdir(real) and os.listdir(real):
        per, top, n, checks = batch_per_vf(real, env)
        B.row(f"real sysfs (/sys, {n} functions x 500)", f"{per:.3f} (fstat per file: {checks})",
              "<= 4", per <= 4)  # fmt: skip
        print(f"    per VF: {top}")
    else:
        print("  real sysfs: no PCI functions in /sys here (not measured)")
    per, top, n, checks = batch_per_vf(str(tree), env)
    print(f"  {f'bench tree (plain dirs, {n} VFs x 500)':<44} {per:.3f} (fstat per file: {checks})")
    print(f"    per VF: {top}")


def big_host() -> None:
    root = hosttree.generate(ROOT / ".bench" / f"host-{PFS}x{VFS}", PFS, VFS)
    env = _env(root)
    nvf = PFS * VFS
    vfctl = [B.installed()[1], "list", "--all", "--json"]
    out = subprocess.run(vfctl, env=env, capture_output=True, text=True, check=True,
                         cwd=ROOT / ".bench").stdout  # fmt: skip
    assert sum(len(p["vfs"]) for p in json.loads(out)["pfs"]) == nvf
    lspci = ["lspci", "-vvv", "-A", "linux-sysfs", "-O", f"sysfs.path={root}/sys/bus/pci"]
    n = max(7, N // 2)
    vs_lspci = B.pair(lspci, vfctl, env, n)
    fstat = True  # this tree is not sysfs: vfctl checks each file is regular (one fstat)
    vs_floor = B.pair(_floor(root / "sys/bus/pci/devices", fstat), vfctl, env, n)
    print(f"\n== {nvf:,} VFs ({PFS} PFs x {VFS}): vfctl list --all --json, CPU ms, median of {n} ==")
    lm, vm = vs_lspci.med("base"), vs_lspci.med("cand")
    each = vs_lspci.ratios()
    ratio = statistics.median(each)
    B.row("vs lspci -vvv (same tree)", f"{lm:7.0f} / {vm:5.0f} ms = {ratio:4.1f}x", ">= 10x",
          ratio >= 10)  # fmt: skip
    print(f"    ratio: median of {n} pairs (each lspci / vfctl back to back), "
          f"range {each[0]:.1f}x-{each[-1]:.1f}x; CPU ms shown are each side's median")
    fm, vm2 = vs_floor.med("base"), vs_floor.med("cand")
    B.row("vs C floor (floor_vf.c)", f"{vm2:7.0f} / {fm:5.0f} ms = {vm2 / fm:4.1f}x", "<= 3x",
          vm2 / fm <= 3)  # fmt: skip
    total, by = _strace_calls(vfctl, env)
    top = ", ".join(f"{k} {v / nvf:.2f}" for k, v in sorted(by.items(), key=lambda x: -x[1])[:6])
    per, less = total / nvf, (total - nvf) / nvf
    print(f"  {'syscalls per VF (strace -c, whole run)':<44} {per:.2f} on this tree (not sysfs: "
          "one regular-file fstat per VF)")  # fmt: skip
    print(f"    per VF: {top}")
    B.row("  the same less that fstat (sysfs has none)", f"{less:.2f}", "<= 4", less <= 4)
    floor_calls = int(subprocess.run(_floor(root / "sys/bus/pci/devices", fstat), check=True,
                                     capture_output=True, text=True).stdout.split()[1])  # fmt: skip
    f = floor_calls / nvf  # floor_vf.c closes each file; vfctl batches them (close_range)
    print(f"    floor_vf.c on this tree: {f:.2f} per VF (addresses derived: no readlink of "
          f"virtfnN), {f - 1:.2f} without a close per file (vfctl batches them); on sysfs "
          f"{f - 2:.2f} (no regular-file fstat there)")
    rss = max(s.rss_mb for s in vs_lspci.cand)
    B.row("peak RSS, vfctl", f"{rss:.0f} MB (lspci {vs_lspci.med('base', 'rss_mb'):.0f} MB)",
          "<= 100 MB", rss <= 100)  # fmt: skip
    print(f"    wall ms (noisy, shared CPUs): vfctl {vs_lspci.med('cand', 'wall_ms'):.0f}, "
          f"lspci {vs_lspci.med('base', 'wall_ms'):.0f}, floor {vs_floor.med('base', 'wall_ms'):.0f}")
    sysfs_rows(root / "sys/bus/pci/devices")


def typical_host() -> None:
    root = ROOT / ".bench" / "sim-default-64"
    env = _env(root)
    py, script = B.installed()
    vfctl = [script]
    if not (root / ".vfctl-sim").is_dir():
        subprocess.run([*vfctl, "sim", "init", str(root), "--preset", "default"], env=env,
                       stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        for pf in ("enp1s0f0", "enp1s0f1"):
            subprocess.run([*vfctl, "enable", pf, "32"], env=env, stdout=subprocess.DEVNULL,
                           check=True)  # fmt: skip
    base = [py, "-c", "pass"]
    print(f"\n== typical host (default sim preset, 64 VFs), CPU ms, median of {N} ==")
    for label, args, limit in (
        ("list --json", ["list", "--json"], 3),
        ("--version", ["--version"], 2),
        ("--help", ["--help"], 2),
        ("show enp1s0f0 --json", ["show", "enp1s0f0", "--json"], 3),
    ):
        p = B.pair(base, [*vfctl, *args], env, N)
        b, c = p.med("base"), p.med("cand")
        rss = max(s.rss_mb for s in p.cand)
        B.row(f"vfctl {label} vs python -c pass", f"{c:5.1f} / {b:4.1f} ms = {c / b:4.1f}x",
              f"<= {limit}x", c / b <= limit)  # fmt: skip
        print(f"    peak RSS {rss:.0f} MB; wall {p.med('cand', 'wall_ms'):.0f} ms")


def import_profile() -> None:
    env = B.child_env()
    p = subprocess.run([B.installed()[0], "-X", "importtime", "-c", "import vfctl.cli"],
                       env=env, capture_output=True, text=True, check=True)  # fmt: skip
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and m[3] == " ":
            rows.append((int(m[2]) / 1000, m[4]))
    top = ", ".join(f"{n} {ms:.1f}" for ms, n in sorted(rows, reverse=True)[:5])
    print(f"\n  import vfctl.cli: {sum(ms for ms, _ in rows):.1f} ms (python -X importtime); top: {top}")


PARTS = {"big": big_host, "typical": typical_host, "imports": import_profile}


def main() -> int:
    """Every part, or those named in VFCTL_BENCH_ONLY (comma-separated: big, typical, imports)."""
    only = [p for p in os.environ.get("VFCTL_BENCH_ONLY", "").split(",") if p]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        print(f"VFCTL_BENCH_ONLY: unknown part(s) {', '.join(unknown)}; choose from "
              f"{', '.join(PARTS)}", file=sys.stderr)  # fmt: skip
        return 2
    for name, part in PARTS.items():
        if not only or name in only:
            part()
    return 0


if __name__ == "__main__":
    sys.exit(main())
