"""`vfctl plan`/`apply` of a profile touching 1,024 VFs on a simulated host.

The host: 17 Intel 82599 ports (the simulator's ixgbe: sriov_totalvfs 63) behind 9 root
ports, VFs enabled (16 x 63 + 16 = 1,024). The profile sets VLAN 100 on every VF, so the plan
has 1,024 netlink actions. Rows: `vfctl plan PROFILE --json` CPU time (target <= 1 s; the
baseline in the same run is `vfctl list --json` on the same host, which plan must exceed only
by the diff) and the netlink reads plan makes, counted in-process: one dump for all PFs
(`vf_info_all`, RTM_GETLINK with RTEXT_FILTER_VF on a real host), none per PF or per VF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import benchlib as B  # noqa: E402

from vfctl import sim  # noqa: E402
from vfctl.sim import create, presets  # noqa: E402
from vfctl.sim import parts as P  # noqa: E402

PORTS, TOTAL = 17, 1024
STAMP = "bench_apply v1\n"
N = int(os.environ.get("VFCTL_BENCH_N", "7"))


def _many_82599() -> tuple[dict[str, object], dict[str, bytes]]:
    b = P.Builder(0, "0-15")
    top = "pci0000:00"
    b.add("0000:00:00.0", top, P.host_bridge(0x8086, 0x1918), None)
    for k in range((PORTS + 1) // 2):
        bus = k + 1
        rp = f"0000:00:{k + 1:02x}.0"
        b.add(rp, top, P.root_port(0x1901, 0x8086, (0, bus, bus), k + 1), "pcieport")
        for fn in (0, 1):
            if 2 * k + fn >= PORTS:
                break
            b.add(f"0000:{bus:02x}:00.{fn}", f"{top}/{rp}", P.i82599(fn, bus), "ixgbe",
                  net=P.nic(f"enp{bus}s0f{fn}", f"90:e2:ba:00:{bus:02x}:{fn:02x}", up=True,
                             speed=10000))  # fmt: skip
    state = presets.base_state("bench", "bench1", "intel_iommu=on iommu=pt")
    return presets.finish(state, b, ["pcieport", "ixgbe"]), b.configs


def host() -> tuple[Path, list[str]]:
    root = ROOT / ".bench" / "sim-1024"
    stamp = root / "STAMP"
    st, configs = _many_82599()
    pfs = sorted(a for a, d in st["devices"].items() if d.get("driver") == "ixgbe")  # type: ignore[union-attr]
    if stamp.exists() and stamp.read_text() == STAMP:
        return root, pfs
    if root.exists():
        shutil.rmtree(root)
    create.prepare(root)
    create.materialize(root, st, configs)
    left = TOTAL
    for a in pfs:
        n = min(63, left)
        sim.write(root, f"sys/bus/pci/devices/{a}/sriov_numvfs", str(n))
        left -= n
    assert left == 0
    stamp.write_text(STAMP)
    return root, pfs


def profile(root: Path, pfs: list[str]) -> Path:
    lines = ["version: 1", "pfs:"]
    for a in pfs:
        n = int((root / "sys/bus/pci/devices" / a / "sriov_numvfs").read_text())
        lines += [f"  - match: {{pci: \"{a}\"}}", f"    total-vfs: {n}", "    vfs:",
                  f"      - id: \"0-{n - 1}\"", "        vlan-id: 100"]  # fmt: skip
    p = root.parent / "sim-1024.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def netlink_reads(root: Path, prof: Path) -> tuple[int, int, int]:
    """(dumps, per-PF requests, actions) of one in-process `vfctl plan`."""
    code = f"""
import json, sys
from typer.testing import CliRunner
from vfctl.host import netlink
calls = {{"all": 0, "one": 0}}
real_all, real_one = netlink.vf_info_all, netlink.vf_info
def count_all(*a, **k):
    calls["all"] += 1
    return real_all(*a, **k)
def count_one(*a, **k):
    calls["one"] += 1
    return real_one(*a, **k)
netlink.vf_info_all, netlink.vf_info = count_all, count_one
from vfctl.cli import app
r = CliRunner().invoke(app, ["--root", {str(root)!r}, "--backend", "none", "plan", {str(prof)!r},
                             "--json"])
doc = json.loads(r.stdout)
print(calls["all"], calls["one"], len(doc["actions"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    a, o, n = out.stdout.split()
    return int(a), int(o), int(n)


def main() -> int:
    root, pfs = host()
    prof = profile(root, pfs)
    env = B.child_env(VFCTL_ROOT=str(root), VFCTL_BACKEND="none")
    vfctl = [sys.executable, "-m", "vfctl"]
    n = max(3, N // 2)
    p = B.pair([*vfctl, "list", "--json"], [*vfctl, "plan", str(prof), "--json"], env, n)
    dumps, per_pf, actions = netlink_reads(root, prof)
    print(f"\n== plan of a profile touching {TOTAL:,} VFs ({len(pfs)} PFs, simulated), "
          f"CPU ms, median of {n} ==")  # fmt: skip
    c, b = p.med("cand"), p.med("base")
    B.row("vfctl plan --json", f"{c:5.0f} ms (list --json {b:.0f} ms)", "<= 1000 ms", c <= 1000)
    B.row("netlink reads during plan", f"{dumps} dump, {per_pf} per-PF ({actions} actions)",
          "1 dump, 0", dumps == 1 and per_pf == 0)  # fmt: skip
    rss = max(s.rss_mb for s in p.cand)
    B.row("peak RSS, plan", f"{rss:.0f} MB", "reported", True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
