"""Fault injection through .vfctl-sim/faults.json, for the lead's fault-matrix tests."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from simhelpers import dev, errno_of, log_lines, rd

from vfctl import sim

PF = "0000:01:00.0"
NUMVFS = f"sys/bus/pci/devices/{PF}/sriov_numvfs"


def faults(root: Path, *rules: dict[str, Any]) -> None:
    (root / ".vfctl-sim/faults.json").write_text(json.dumps(list(rules)))


@pytest.mark.parametrize("name", ["EBUSY", "EIO", "ENOMEM", "ENODEV"])
def test_error_changes_nothing_and_fires_once(minimal: Path, name: str) -> None:
    faults(minimal, {"path": "sys/bus/pci/devices/*/sriov_numvfs", "errno": name})
    assert errno_of(lambda: sim.write(minimal, NUMVFS, "4")) == getattr(errno, name)
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "0"
    assert len(os.listdir(minimal / "sys/bus/pci/devices")) == 3
    assert log_lines(minimal)[-1] == [NUMVFS, "4", name]
    sim.write(minimal, NUMVFS, "4")  # times defaults to 1
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "4"


def test_after_times_and_value_filters(minimal: Path) -> None:
    sim.write(minimal, NUMVFS, "4")
    vfs = ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4", "0000:01:10.6"]
    faults(minimal, {"path": "sys/bus/pci/drivers/*/unbind", "errno": "ENODEV", "after": 2,
                     "times": None})  # fmt: skip
    sim.write(minimal, "sys/bus/pci/drivers/igbvf/unbind", vfs[0])
    sim.write(minimal, "sys/bus/pci/drivers/igbvf/unbind", vfs[1])
    for vf in vfs[2:]:  # mid-way: from the third on, every unbind fails
        assert errno_of(
            lambda vf=vf: sim.write(minimal, "sys/bus/pci/drivers/igbvf/unbind", vf)
        ) == (errno.ENODEV)
    assert os.path.islink(minimal / dev(vfs[3], "driver"))
    faults(minimal, {"path": "*/driver_override", "value": "vfio-pci", "errno": "EIO"})
    sim.write(minimal, dev(vfs[0], "driver_override"), "other")
    assert errno_of(lambda: sim.write(minimal, dev(vfs[0], "driver_override"), "vfio-pci\n")) == (
        errno.EIO
    )
    assert rd(minimal, dev(vfs[0], "driver_override")) == "other"


def test_partial_enable_succeeds_with_fewer_vfs(minimal: Path) -> None:
    faults(minimal, {"path": NUMVFS, "mode": "partial", "create": 2})
    sim.write(minimal, NUMVFS, "5")
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "2"
    assert sorted(x for x in os.listdir(minimal / dev(PF)) if x.startswith("virtfn")) == [
        "virtfn0", "virtfn1",
    ]  # fmt: skip
    assert len(sim.vf_info(minimal, "enp1s0")) == 2


def test_a_vf_that_never_appears(minimal: Path) -> None:
    faults(minimal, {"path": NUMVFS, "mode": "no_vf", "vf": 1})
    sim.write(minimal, NUMVFS, "3")
    assert rd(minimal, dev(PF, "sriov_numvfs")) == "3"
    assert sorted(x for x in os.listdir(minimal / dev(PF)) if x.startswith("virtfn")) == [
        "virtfn0", "virtfn2",
    ]  # fmt: skip
    assert not (minimal / dev("0000:01:10.2")).exists()
    sim.write(minimal, NUMVFS, "0")
    assert len(os.listdir(minimal / "sys/bus/pci/devices")) == 3


def test_late_bind_happens_on_the_next_probe(minimal: Path) -> None:
    faults(minimal, {"path": NUMVFS, "mode": "late_bind"})
    sim.write(minimal, NUMVFS, "2")
    assert not (minimal / dev("0000:01:10.0", "driver")).exists()
    sim.settle(minimal)
    assert os.path.basename(os.readlink(minimal / dev("0000:01:10.0", "driver"))) == "igbvf"
    # a late drivers_probe: the bind shows up on the next simulator call
    vf = "0000:01:10.2"
    sim.modprobe(minimal, "vfio-pci")
    sim.write(minimal, dev(vf, "driver_override"), "vfio-pci")
    sim.write(minimal, "sys/bus/pci/drivers/igbvf/unbind", vf)
    faults(minimal, {"path": "sys/bus/pci/drivers_probe", "mode": "late_bind"})
    sim.write(minimal, "sys/bus/pci/drivers_probe", vf)
    assert not (minimal / dev(vf, "driver")).exists()
    sim.vf_info(minimal, "enp1s0")
    assert os.path.basename(os.readlink(minimal / dev(vf, "driver"))) == "vfio-pci"


def test_netlink_faults(minimal: Path) -> None:
    sim.write(minimal, NUMVFS, "1")
    faults(minimal, {"path": "netlink/enp1s0/vf0/trust", "errno": "EIO"})
    assert errno_of(lambda: sim.set_vf(minimal, "enp1s0", 0, trust=True)) == errno.EIO
    sim.set_vf(minimal, "enp1s0", 0, trust=True)
    assert sim.vf_info(minimal, "enp1s0")[0]["trust"] is True
