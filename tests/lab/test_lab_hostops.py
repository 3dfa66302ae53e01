"""vfctl's host operations on the real kernel, checked against what sysfs and /dev say.

One scenario in one guest command (each vfctl start costs seconds under TCG): enable the
driver's maximum, refuse too many and negative counts without writing, go through 0 with
autoprobe off, bind two VFs to vfio-pci, refuse a count change while a VF's /dev/vfio/N is
held by a real process (the kernel would block in D state: it must not be asked), unbind,
disable, doctor. Refusals run under strace, which proves no sysfs file was opened for writing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .runner import GUEST_SHARE, REPO, Lab

SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/h; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${PF##*/}
D=/sys/bus/pci/devices/$PF
echo $PF > $O/pf
state() { sh __REPO__/tests/lab/data/state.sh / $PF > $O/$1.state; }
step() { n=$1; shift; "$@" > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; state $n; }
# the sysfs files a command opened for writing (O_WRONLY/O_RDWR), from strace
traced() { n=$1; shift
    strace -f --seccomp-bpf -qq -e trace=openat -e status=successful -o $O/$n.trace "$@" \
        > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; state $n
    grep -E 'O_(WRONLY|RDWR)' $O/$n.trace | grep -o '"/sys/[^"]*"' > $O/$n.writes || true; }

cat $D/sriov_totalvfs > $O/totalvfs
step enable7 vfctl enable $PF 7 --json
traced too_many vfctl enable $PF 8 --json
step negative vfctl enable $PF --json -- -1
( /bin/echo -1 > $D/sriov_numvfs ) 2> $O/raw_negative.err; echo $? > $O/raw_negative.rc
step noauto vfctl enable $PF 3 --no-autoprobe --json
step bind vfctl bind $PF vf0 vf1 --json
G=$(basename $(readlink $D/virtfn1/iommu_group)); echo $G > $O/group
stat -c '%F %t:%T' /dev/vfio/$G /dev/vfio/vfio > $O/vfio_nodes
python3 -c 'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR); print("held", flush=True); time.sleep(600)' \
    /dev/vfio/$G > $O/holder.out 2>&1 &
H=$!; echo $H > $O/holder.pid
for _ in $(seq 100); do grep -q held $O/holder.out && break; sleep 0.1; done
traced held vfctl enable $PF 2 --json
traced held_force vfctl disable $PF --force --json
kill $H; wait $H
step unbind vfctl unbind $PF vf0 vf1 --json
step disable vfctl disable $PF --json
echo 1 > $D/sriov_drivers_autoprobe
step doctor vfctl doctor --json
"""


@pytest.fixture(scope="module")
def run(lab: Lab) -> dict[str, Any]:
    script = SCRIPT.replace("__SHARE__", GUEST_SHARE).replace("__REPO__", str(REPO))
    lab.run(script, timeout=600, check=True, retry_on_hang=True)
    out = lab.share / "h"
    return {"dir": out, "pf": (out / "pf").read_text().strip()}


def rd(run: dict[str, Any], name: str) -> str:
    p: Path = run["dir"] / name
    return p.read_text() if p.exists() else ""


def rc(run: dict[str, Any], step: str) -> int:
    return int(rd(run, f"{step}.rc"))


def doc(run: dict[str, Any], step: str) -> dict[str, Any]:
    text = rd(run, f"{step}.out")
    assert text.strip(), f"{step}: no JSON; stderr: {rd(run, step + '.err')}"
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def vfs(run: dict[str, Any], step: str) -> list[list[str]]:
    """`vf INDEX ADDRESS DRIVER GROUP OVERRIDE NETDEVS` rows of the kernel's state after a step."""
    return [line.split()[1:] for line in rd(run, f"{step}.state").splitlines() if line[:3] == "vf "]


def numvfs(run: dict[str, Any], step: str) -> int:
    return int(rd(run, f"{step}.state").split("\n", 1)[0].split()[1])


def test_enable_the_drivers_maximum(run: dict[str, Any]) -> None:
    total = int(rd(run, "totalvfs"))
    assert total == 7  # igb's cap, below the capability's TotalVFs 8
    assert rc(run, "enable7") == 0, rd(run, "enable7.err")
    assert doc(run, "enable7")["changed"] is True
    rows = vfs(run, "enable7")
    assert numvfs(run, "enable7") == total and len(rows) == total
    assert {r[2] for r in rows} == {"igbvf"}  # autoprobe on: the VF driver bound each
    assert len({r[3] for r in rows}) == total  # each VF alone in its own IOMMU group


def test_more_than_totalvfs_is_refused_without_writing(run: dict[str, Any]) -> None:
    assert rc(run, "too_many") == 2
    d = doc(run, "too_many")
    assert d["changed"] is False and d["error"]["kind"] == "invalid"
    assert "sriov_totalvfs is 7" in d["error"]["message"]
    assert rd(run, "too_many.writes") == ""  # no sysfs file opened for writing
    assert rd(run, "too_many.state") == rd(run, "enable7.state")


def test_negative_count(run: dict[str, Any]) -> None:
    assert rc(run, "negative") == 2 and "invalid VF count -1" in rd(run, "negative.err")
    assert rd(run, "negative.state") == rd(run, "enable7.state")
    # the kernel's own answer to the same value, for the record: EINVAL
    assert rc(run, "raw_negative") != 0 and "Invalid argument" in rd(run, "raw_negative.err")


def test_change_goes_through_zero_with_autoprobe_off(run: dict[str, Any]) -> None:
    assert rc(run, "noauto") == 0, rd(run, "noauto.err")
    details = [a["detail"] for a in doc(run, "noauto")["actions"]]
    assert details == ["1 -> 0", "7 -> 0", "0 -> 3"]  # autoprobe, then EBUSY avoided
    assert "autoprobe 0" in rd(run, "noauto.state")
    assert [r[2] for r in vfs(run, "noauto")] == ["-", "-", "-"]


def test_bind_two_vfs_to_vfio(run: dict[str, Any]) -> None:
    assert rc(run, "bind") == 0, rd(run, "bind.err")
    rows = vfs(run, "bind")
    assert [(r[2], r[4]) for r in rows] == [("vfio-pci", "vfio-pci")] * 2 + [("-", "-")]
    groups = {r[3] for r in rows[:2]}
    vfio = next(ln for ln in rd(run, "bind.state").splitlines() if ln[:5] == "vfio ").split()[1:]
    assert groups <= set(vfio) and "vfio" in vfio
    assert rd(run, "group").strip() == rows[1][3]
    nodes = rd(run, "vfio_nodes").splitlines()
    assert len(nodes) == 2 and all(n.startswith("character special file") for n in nodes)


@pytest.mark.parametrize("step", ["held", "held_force"])
def test_held_vfio_group_refuses_and_the_kernel_is_not_asked(
    run: dict[str, Any], step: str
) -> None:
    assert rc(run, step) == 4, rd(run, f"{step}.err")
    msg = doc(run, step)["error"]["message"]
    pid = rd(run, "holder.pid").strip()
    assert re.search(
        rf"/dev/vfio/{rd(run, 'group').strip()} held open by pid {pid} \(python3\)", msg
    )
    assert rd(run, f"{step}.writes") == ""  # not even sriov_numvfs opened: no D-state hang
    assert rd(run, f"{step}.state") == rd(run, "bind.state")


def test_unbind_and_disable(run: dict[str, Any]) -> None:
    assert rc(run, "unbind") == 0, rd(run, "unbind.err")
    # back to the default driver: with autoprobe off that is none, and no override is left
    assert [(r[2], r[4]) for r in vfs(run, "unbind")] == [("-", "-")] * 3
    assert rc(run, "disable") == 0 and numvfs(run, "disable") == 0 and vfs(run, "disable") == []


def test_doctor_reports_iommu_and_interrupt_remapping(run: dict[str, Any]) -> None:
    assert rc(run, "doctor") == 0, rd(run, "doctor.err")
    checks = {c["check"]: c for c in doc(run, "doctor")["checks"] if c["target"] is None}
    assert checks["iommu"]["status"] == "ok"
    assert checks["interrupt-remapping"]["status"] == "ok"
    assert checks["vfio-pci"]["status"] == "ok"
