"""Profiles on the real kernel: apply converges, a second apply does nothing, export | apply is a no-op."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .runner import GUEST_SHARE, Lab

SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/p; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${PF##*/}
ND=$(ls /sys/bus/pci/devices/$PF/net | head -1)
cat > $O/profile.yaml <<EOF2
version: 1
pfs:
  - match: {pci: "$PF"}
    total-vfs: 3
    drivers-autoprobe: true
    vfs:
      - id: 0
        driver: vfio-pci
      - id: 1
        mac-address: auto
        vlan-id: 42
        trust: true
EOF2
step() { n=$1; shift; "$@" > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; }
step apply1 vfctl apply $O/profile.yaml --json
step apply2 vfctl apply $O/profile.yaml --json
step show vfctl show $ND --json
vfctl export > $O/export.yaml 2> $O/export.err
step roundtrip vfctl apply $O/export.yaml --json
cat /sys/bus/pci/devices/$PF/sriov_numvfs > $O/numvfs
"""


@pytest.fixture(scope="module")
def run(lab: Lab) -> Path:
    lab.run(SCRIPT.replace("__SHARE__", GUEST_SHARE), timeout=600, check=True, retry_on_hang=True)
    return lab.share / "p"


def doc(d: Path, step: str) -> dict[str, Any]:
    rc = int((d / f"{step}.rc").read_text())
    assert rc == 0, (step, (d / f"{step}.err").read_text())
    parsed: dict[str, Any] = json.loads((d / f"{step}.out").read_text())
    return parsed


def test_apply_converges_the_real_host(run: Path) -> None:
    first = doc(run, "apply1")
    assert first["changed"] is True and first["error"] is None
    assert (run / "numvfs").read_text().strip() == "3"
    vfs = doc(run, "show")["vfs"]
    assert vfs[0]["driver"] == "vfio-pci" and vfs[0]["driver_override"] == "vfio-pci"
    assert vfs[1]["vlan"] == 42 and vfs[1]["trust"] is True
    mac = vfs[1]["mac"]
    assert int(mac[:2], 16) & 0x03 == 0x02  # locally administered unicast, derived not random


def test_second_apply_changes_nothing(run: Path) -> None:
    second = doc(run, "apply2")
    assert second["changed"] is False and second["actions"] == []


def test_export_then_apply_is_a_no_op(run: Path) -> None:
    assert "total-vfs: 3" in (run / "export.yaml").read_text()
    rt = doc(run, "roundtrip")
    assert rt["changed"] is False and rt["actions"] == [], rt
