"""`vfctl list --all --json` against `lspci -vvv` on the lab's real kernel (real sysfs).

On a real kernel every config-space read is a config cycle (here a VM exit into QEMU), so this
is where reading less pays. Boots the lab (skips with a message and exit 0 when `make
lab-deps` has not prepared it), enables every VF the emulated igb PFs offer, then inside the
guest: CPU time (user + system of the children) of vfctl, lspci -vvv and `python -c pass`,
alternating, medians; and `strace -f -c` of vfctl, then again with one VF per PF: the
difference per VF, on real sysfs (where the batch skips the per-file regular-file fstat: the
kernel guarantees regular files there).
Usage: python benchmarks/bench_lab_list.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.runner import GUEST_SHARE, Lab, LabNotPrepared, find_artifacts  # noqa: E402

MEASURE = r"""
import json, os, re, resource, statistics, subprocess, sys
def cpu(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
vfctl = [sys.executable, "-m", "vfctl", "--backend", "none", "list", "--all", "--json"]
doc = json.loads(subprocess.run(vfctl, capture_output=True, text=True, check=True).stdout)
nvf = sum(len(p["vfs"]) for p in doc["pfs"])
runs = {"vfctl": [], "lspci": [], "pass": []}
for _ in range(5):
    runs["vfctl"].append(cpu(vfctl))
    runs["lspci"].append(cpu(["lspci", "-vvv"]))
    runs["pass"].append(cpu([sys.executable, "-c", "pass"]))
def calls_by():
    subprocess.run(["strace", "-f", "-c", "-o", "/tmp/st", *vfctl], stdout=subprocess.DEVNULL)
    by = {}
    for line in open("/tmp/st"):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m and m[2] != "total":
            by[m[2]] = int(m[1])
    return by
with_vfs = calls_by()
few = 0
for p in doc["pfs"]:  # the same run with one VF per PF: the difference is what more VFs cost
    if p["num_vfs"] > 1:  # (not 0 VFs: with none, whole steps such as netlink are skipped)
        for n in ("0", "1"):
            with open(f"/sys/bus/pci/devices/{p['address']}/sriov_numvfs", "w") as f:
                f.write(n)
    few += min(p["num_vfs"], 1)
fewer = calls_by()
delta = {k: with_vfs.get(k, 0) - fewer.get(k, 0) for k in set(with_vfs) | set(fewer)}
print(json.dumps({"nvf": nvf, "pfs": len(doc["pfs"]), "calls": sum(with_vfs.values()),
                  "delta": delta, "dvf": nvf - few,
                  **{k: statistics.median(v) for k, v in runs.items()}}))
"""

SCRIPT = r"""
O=__SHARE__/bench; mkdir -p $O
for PF in /sys/bus/pci/drivers/igb/0000:*; do
  [ -e $PF/sriov_totalvfs ] && cat $PF/sriov_totalvfs > $PF/sriov_numvfs
done
python -c "$MEASURE" > $O/list.json
"""


def main() -> int:
    try:
        find_artifacts()
    except LabNotPrepared as e:
        print(f"bench_lab_list: skipped, {e}")
        return 0
    t0 = time.monotonic()
    with Lab() as lab:
        lab.run(SCRIPT.replace("__SHARE__", GUEST_SHARE), timeout=900, check=True,
                env={"MEASURE": MEASURE})  # fmt: skip
        r = json.loads((lab.share / "bench" / "list.json").read_text())
    print(f"\n== lab (kernel {lab.kernel_version}, {time.monotonic() - t0:.0f} s): "
          f"{r['pfs']} PFs, {r['nvf']} VFs, guest CPU ms, median of 5 ==")  # fmt: skip
    ratio = r["lspci"] / r["vfctl"]
    print(f"  lspci -vvv / vfctl list --all --json   {r['lspci']:6.0f} / {r['vfctl']:4.0f} ms "
          f"= {ratio:.1f}x   (python -c pass {r['pass']:.0f} ms)")  # fmt: skip
    print(f"  syscalls, whole vfctl run              {r['calls']} ({r['calls'] / max(r['nvf'], 1):.0f}"
          f" per VF: with {r['nvf']} VFs the interpreter's start dominates)")  # fmt: skip
    nvf, delta = max(r["dvf"], 1), r["delta"]
    stats = sum(v for k, v in delta.items() if k in ("fstat", "newfstatat", "statx", "stat"))
    top = ", ".join(f"{k} {v / nvf:.2f}" for k, v in sorted(delta.items(), key=lambda x: -x[1])
                    if v)  # fmt: skip
    print(f"  syscalls per VF on real sysfs          {sum(delta.values()) / nvf:.2f} ({r['nvf']} VFs "
          f"less 1 per PF; below 16 VFs driver and netdevs are read per VF, not listed): {top}; fstat-family per VF {stats / nvf:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
