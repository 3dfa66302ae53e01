"""The simulator against the real kernel: one scenario, run on both, must end the same way.

The lab guest runs `data/scenario.sh` on its real kernel; the host runs the same script on a
simulated host started from `data/lab-snapshot/` (the committed `vfctl sim snapshot` of this very
guest, before any VF exists). After every step the exit code, the JSON envelope (changed, actions,
error kind), the kernel's errno for raw writes and the PF's sysfs state (numvfs, VF addresses,
drivers, driver_override, IOMMU groups, /dev/vfio) must agree. Where they differed the kernel was
right and the simulator was fixed (docs/lab.md, "Differences found").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vfctl.discover import discover
from vfctl.host.open import open_host

from .runner import GUEST_SHARE, REPO, Lab

DATA = Path(__file__).resolve().parent / "data"
SNAPSHOT = DATA / "lab-snapshot"
SCENARIO = DATA / "scenario.sh"
STEPS = [f"s{i:02d}" for i in range(1, 10)]
# Host side: the venv first, as in the guest.
HOST_PATH = f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"


# One process in the guest (each Python start costs seconds under TCG): snapshot the guest,
# then discover both the snapshot and the live kernel.
LISTS = """
import json, pathlib
from vfctl.discover import discover
from vfctl import sim
from vfctl.host.open import open_host
sim.snapshot(pathlib.Path("/"), pathlib.Path("/tmp/snap"))
print(json.dumps({"snap_list": discover(open_host("/tmp/snap")).to_json(),
                  "kernel_list": discover(open_host("/")).to_json()}))
"""


def first_igb(root: Path) -> str:
    """The PF the scenario uses: the first igb PF in bus order, found through sysfs."""
    pfs = sorted(p.name for p in (root / "sys/bus/pci/drivers/igb").glob("0000:*"))
    assert pfs, f"no igb PF under {root}"
    return pfs[0]


def read_steps(out: Path) -> dict[str, dict[str, str]]:
    res = {}
    for n in STEPS:
        t = out / f"{n}.time"
        if t.exists():
            t0, t1 = map(float, t.read_text().split())
            print(f"{out.parent.name} {n}: {t1 - t0:.1f} s")
    for n in ["s00", *STEPS]:
        res[n] = {
            k: (out / f"{n}.{k}").read_text() if (out / f"{n}.{k}").exists() else ""
            for k in ("out", "err", "rc", "state")
        }
    return res


@pytest.fixture(scope="module")
def kernel(lab: Lab) -> dict[str, Any]:
    """The scenario on the real kernel, plus `vfctl list` of the guest and of a fresh snapshot."""
    script = f"""
        export VFCTL_BACKEND=none
        PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${{PF##*/}}
        echo $PF > {GUEST_SHARE}/pf
        python -c "$LISTS" > {GUEST_SHARE}/lists.json || exit 11
        bash {SCENARIO} / $PF {GUEST_SHARE}/diff real
    """
    lab.run(script, timeout=600, check=True, retry_on_hang=True, env={"LISTS": LISTS})
    share = lab.share
    return {
        "pf": (share / "pf").read_text().strip(),
        **json.loads((share / "lists.json").read_text()),
        "steps": read_steps(share / "diff"),
    }


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same scenario on a simulated host made from the committed snapshot (no boot)."""
    base = tmp_path_factory.mktemp("diff")
    root = base / "host"
    shutil.copytree(SNAPSHOT, root, symlinks=True)
    pf = first_igb(root)
    env = {**os.environ, "PATH": HOST_PATH}
    env.pop("VFCTL_ROOT", None)
    proc = subprocess.run(
        ["bash", str(SCENARIO), str(root), pf, str(base / "out"), "sim"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = discover(open_host(SNAPSHOT)).to_json()
    return {"pf": pf, "list": listed, "steps": read_steps(base / "out")}


def envelope(text: str) -> dict[str, Any] | None:
    """What must agree in a mutating command's JSON: not the messages (pids, names differ)."""
    if not text.strip().startswith("{"):
        return None
    doc = json.loads(text)
    err = doc.get("error")
    return {
        "changed": doc["changed"],
        "actions": [(a["op"], a["target"], a["detail"]) for a in doc["actions"]],
        "rolled_back": [(a["op"], a["detail"]) for a in doc["rolled_back"]],
        "error": err["kind"] if err else None,
    }


def pf_facts(listed: dict[str, Any]) -> list[dict[str, Any]]:
    """A PF as `vfctl list` shows it, minus what a snapshot cannot carry (netlink VF settings)."""
    keep = [
        "address",
        "driver",
        "vendor_id",
        "device_id",
        "class",
        "total_vfs",
        "cap_total_vfs",
        "initial_vfs",
        "num_vfs",
        "vf_offset",
        "vf_stride",
        "vf_device_id",
        "autoprobe",
        "numa_node",
        "iommu_group",
        "link",
        "ari",
        "netdevs",
    ]
    return [{k: p[k] for k in keep} for p in listed["pfs"]]


def test_same_pf_chosen(kernel: dict[str, Any], simulated: dict[str, Any]) -> None:
    assert kernel["pf"] == simulated["pf"]


def test_committed_snapshot_is_this_lab(kernel: dict[str, Any], simulated: dict[str, Any]) -> None:
    """The snapshot under data/ still describes the lab (a QEMU/kernel change would show here)."""
    assert pf_facts(kernel["snap_list"]) == pf_facts(kernel["kernel_list"])
    assert pf_facts(simulated["list"]) == pf_facts(kernel["kernel_list"])


def test_snapshot_is_readable_without_root() -> None:
    for dirpath, dirnames, filenames in os.walk(SNAPSHOT):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                assert p.stat().st_mode & 0o004, f"{p} is not world-readable"


def test_initial_state(kernel: dict[str, Any], simulated: dict[str, Any]) -> None:
    assert kernel["steps"]["s00"]["state"] == simulated["steps"]["s00"]["state"]
    assert kernel["steps"]["s00"]["state"].startswith("numvfs 0\n")


@pytest.mark.parametrize("step", STEPS)
def test_step_agrees(kernel: dict[str, Any], simulated: dict[str, Any], step: str) -> None:
    k, s = kernel["steps"][step], simulated["steps"][step]
    assert k["rc"], f"{step} did not run in the lab: {k}"
    assert (k["rc"], envelope(k["out"])) == (s["rc"], envelope(s["out"])), (
        f"{step}: kernel\n{k['out']}{k['err']}\nsimulator\n{s['out']}{s['err']}"
    )
    assert k["state"] == s["state"], f"{step}: sysfs state differs"
    if envelope(k["out"]) is None:  # raw writes: the errno of each, from the kernel itself
        assert k["out"] == s["out"]


def test_scenario_did_what_it_claims(kernel: dict[str, Any]) -> None:
    """Guard against a scenario that agrees because nothing happened on either side."""
    st = kernel["steps"]
    rcs = [st[n]["rc"].strip() for n in STEPS]
    assert rcs == ["0", "0", "4", "4", "0", "0", "0", "0", "0"]
    drivers = [line.split()[3] for line in st["s02"]["state"].splitlines() if line[:3] == "vf "]
    assert drivers == ["vfio-pci", "vfio-pci", "igbvf", "igbvf"]
    assert [line.split()[1] for line in st["s06"]["out"].splitlines()] == [
        "EBUSY", "ok", "ERANGE", "EINVAL", "EINVAL"
    ]  # fmt: skip
    through_zero = envelope(st["s05"]["out"])
    assert through_zero is not None
    assert [a[2] for a in through_zero["actions"]] == ["4 -> 0", "0 -> 3"]
    vf_lines = [line.split() for line in st["s08"]["state"].splitlines() if line.startswith("vf ")]
    assert [v[3] for v in vf_lines] == ["-", "-"]  # autoprobe off: no driver
    vf_lines = [line.split() for line in st["s09"]["state"].splitlines() if line.startswith("vf ")]
    assert [v[3] for v in vf_lines] == ["-", "vfio-pci"]  # an override probes despite that
