"""End-to-end `vfctl list --json` on a 1,024-function host tree: wall time and import time.

The tree is gentree's (4 PFs x 255 VFs) laid out as a host root (`ROOT/sys/bus/pci/devices`)
with the PFs' sriov_* attributes and virtfnN/physfn links. The baseline measured in the same
run is `python -c pass` (interpreter start), so the ratio shows vfctl's own cost.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gentree  # noqa: E402

TARGET_MS = 150.0


def host_tree(base: Path, pfs: int = 4, vfs: int = 255) -> Path:
    src = base / f"tree-{pfs}x{vfs}"
    gentree.generate(src, pfs, vfs)
    root = base / f"host-{pfs}x{vfs}"
    stamp = root / "STAMP"
    if stamp.exists() and stamp.read_text() == (src / "STAMP").read_text():
        return root
    if root.exists():
        shutil.rmtree(root)
    devs = root / "sys" / "bus" / "pci" / "devices"
    shutil.copytree(src / "devices", devs, symlinks=True)
    for bus in range(1, pfs + 1):
        pf = devs / f"0000:{bus:02x}:00.0"
        attrs = {"sriov_totalvfs": vfs, "sriov_numvfs": vfs, "sriov_offset": 1, "sriov_stride": 1,
                 "sriov_vf_device": "10ca", "sriov_drivers_autoprobe": 1}
        for k, v in attrs.items():
            (pf / k).write_text(f"{v}\n")
        for i in range(vfs):
            fn = i + 1
            vf = f"0000:{bus:02x}:{fn >> 3:02x}.{fn & 7}"
            os.symlink(f"../{vf}", pf / f"virtfn{i}")
            os.symlink(f"../{pf.name}", devs / vf / "physfn")
    (root / "sys" / "kernel" / "iommu_groups").mkdir(parents=True)
    stamp.write_text((src / "STAMP").read_text())
    return root


def _time(cmd: list[str], env: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - t) * 1000)
    return out


def import_ms(env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """Cumulative import time of vfctl's CLI (python -X importtime), and the top modules."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import vfctl.cli"],
                       env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and not m[3].strip() and len(m[3]) <= 1:
            rows.append((int(m[2]) / 1000, m[4]))
    total = sum(ms for ms, _ in rows)
    return total, sorted(rows, reverse=True)[:5]


def main() -> int:
    base = ROOT / ".bench"
    root = host_tree(base)
    env = dict(os.environ, VFCTL_ROOT=str(root), VFCTL_BACKEND="none")
    vfctl = [sys.executable, "-m", "vfctl", "list", "--json"]
    out = subprocess.run(vfctl, env=env, capture_output=True, text=True, check=True).stdout
    assert '"num_vfs": 255' in out
    base_ms = statistics.median(_time([sys.executable, "-c", "pass"], env, 7))
    list_ms = statistics.median(_time(vfctl, env, 7))
    imp, top = import_ms(env)
    print("\n== vfctl list --json, 1,024 functions (4 PFs x 255 VFs), median of 7 ==")
    print(f"  python -c pass (baseline)   {base_ms:8.1f} ms")
    print(f"  vfctl list --json           {list_ms:8.1f} ms   ({list_ms / base_ms:.1f}x baseline)")
    print(f"  import vfctl.cli            {imp:8.1f} ms   top: "
          + ", ".join(f"{n} {ms:.1f}" for ms, n in top))
    verdict = "ok" if list_ms <= TARGET_MS else "MISSED"
    print(f"  target <= {TARGET_MS:.0f} ms wall: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
