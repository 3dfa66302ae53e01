"""Config-space bytes read on the lab's real kernel: vfctl's parser versus `lspci -vvv`.

On real sysfs every config read is a config cycle the kernel performs (and, on hardware, the
device answers), so bytes read is the cost that matters. Boots the real-kernel lab (skips with
a message and exit 0 when `make lab-deps` has not prepared it), enables VFs so VF config spaces
are counted too, then in one guest command:

- vfctl: `configspace.parse_files` on every `/sys/bus/pci/devices/*/config` (C, and the same with
  `VFCTL_NO_C=1`), each document carrying `bytes_read` and `reads`;
- lspci: `strace -f -y -e trace=pread64 lspci -vvv` as root, summing each pread's result per
  config file (`-y` names the file behind each descriptor).

Prints one row per device and the totals' ratio. Usage: `python benchmarks/bench_lab_reads.py`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.runner import GUEST_SHARE, Lab, LabNotPrepared, find_artifacts  # noqa: E402

PARSE = r"""
import glob, json, time
from vfctl.pci import configspace as cs
paths = sorted(glob.glob("/sys/bus/pci/devices/*/config"))
t = time.perf_counter(); docs = cs.parse_files(paths); t = time.perf_counter() - t
print(json.dumps({"have_c": cs.HAVE_C, "seconds": t,
                  "docs": [{k: d.get(k) for k in ("path", "bytes_read", "reads")} for d in docs]}))
"""

SCRIPT = r"""
O=__SHARE__/bench; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); echo 4 > $PF/sriov_numvfs
python -c "$PARSE" > $O/c.json
VFCTL_NO_C=1 python -c "$PARSE" > $O/py.json
strace -f -y -qq -e trace=pread64 -o $O/lspci.trace lspci -vvv > /dev/null
t0=$(date +%s%N); lspci -vvv > /dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )) > $O/lspci.us
"""

_PREAD = re.compile(r"pread64\(\d+<(/sys/[^>]+/config)>, .*\) = (\d+)$")


def lspci_reads(trace: str) -> dict[str, tuple[int, int]]:
    """(bytes, preads) per device address from an `strace -y` log."""
    out: dict[str, tuple[int, int]] = {}
    for line in trace.splitlines():
        m = _PREAD.search(line)
        if m:
            addr = m[1].rsplit("/", 2)[-2]
            b, n = out.get(addr, (0, 0))
            out[addr] = (b + int(m[2]), n + 1)
    return out


def main() -> int:
    try:
        find_artifacts()
    except LabNotPrepared as e:
        print(f"bench_lab_reads: skipped, {e}")
        return 0
    t0 = time.monotonic()
    with Lab() as lab:
        boot = lab.boot_seconds
        lab.run(
            SCRIPT.replace("__SHARE__", GUEST_SHARE),
            timeout=300,
            check=True,
            env={"PARSE": PARSE},
        )
        d = lab.share / "bench"
        c = json.loads((d / "c.json").read_text())
        py = json.loads((d / "py.json").read_text())
        lsp = lspci_reads((d / "lspci.trace").read_text())
        lspci_us = int((d / "lspci.us").read_text())
    kernel = lab.kernel_version
    print(f"lab reads: kernel {kernel}, boot {boot:.1f} s, total {time.monotonic() - t0:.1f} s")
    print(f"{'device':<14}{'vfctl B':>9}{'reads':>7}{'lspci B':>9}{'preads':>8}{'ratio':>8}")
    tot_v = tot_l = 0
    for doc, pdoc in zip(c["docs"], py["docs"], strict=True):
        addr = doc["path"].rsplit("/", 2)[-2]
        if (doc["bytes_read"], doc["reads"]) != (pdoc["bytes_read"], pdoc["reads"]):
            print(f"  {addr}: C and Python read differently: {doc} vs {pdoc}")
        lb, ln = lsp.get(addr, (0, 0))
        tot_v += doc["bytes_read"] or 0
        tot_l += lb
        ratio = f"{lb / doc['bytes_read']:.1f}x" if doc["bytes_read"] else "-"
        print(f"{addr:<14}{doc['bytes_read']:>9}{doc['reads']:>7}{lb:>9}{ln:>8}{ratio:>8}")
    n = len(c["docs"])
    print(
        f"total: {n} devices, vfctl {tot_v} B ({tot_v / n:.0f} B/device), lspci -vvv {tot_l} B "
        f"({tot_l / n:.0f} B/device): lspci reads {tot_l / tot_v:.1f}x more"
    )
    print(
        f"guest time: vfctl C parse {c['seconds'] * 1e3:.1f} ms (have_c={c['have_c']}), "
        f"Python {py['seconds'] * 1e3:.1f} ms, lspci -vvv {lspci_us / 1e3:.0f} ms (whole run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
