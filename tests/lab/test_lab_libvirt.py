"""Live attach on a real IOMMU: vfctl + libvirtd inside the lab guest, an inner TCG domain.

The lab guest has an emulated Intel IOMMU and real vfio-pci. Inside it, the isolated libvirtd of
the libvirt tests (tests/libvirt/libvirtd.py) runs an inner q35 domain with no disk and no OS;
vfctl live-attaches an igb VF to it and QEMU's own monitor (`info pci`) must list the VF
(8086:10ca) on the inner guest's bus, then the detach must remove it again.

The inner domain uses native PCIe hotplug on its root ports (ACPI PCI hotplug off): with ACPI
hotplug, QEMU completes an unplug only when the guest OS ejects the device, and this guest has
no OS, so every live detach would time out. Native hotplug of a slot the guest never powered
completes at once.

One module, one scenario: tests run in order and share the daemon and the domain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .runner import REPO, Lab, LabConfig

LAB_CONFIG = LabConfig(igb_pfs=1, nvme=False)
STEP = 180.0  # seconds for one command: Python and libvirt under nested TCG are slow
VF_ID = "8086:10ca"  # igbvf, as the inner QEMU reports it
DAEMON = "/run/vfctl-lv"

INNER_XML = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>inner</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'/>
    <controller type='pci' index='2' model='pcie-root-port'/>
    <controller type='pci' index='3' model='pcie-root-port'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/>
  </qemu:commandline>
</domain>
"""

START_DAEMON = f"""
set -e
modprobe vfio-pci
mkdir -p {DAEMON}
setsid python {REPO}/tests/libvirt/libvirtd.py {DAEMON}/d > {DAEMON}/uri 2> {DAEMON}/err \\
    < /dev/null &
echo $! > {DAEMON}/pid
i=0
while [ ! -s {DAEMON}/uri ]; do
    kill -0 "$(cat {DAEMON}/pid)" 2>/dev/null || {{ cat {DAEMON}/err >&2; exit 1; }}
    i=$((i + 1)); [ $i -lt 1200 ] || {{ echo "libvirtd: no URI after 120 s" >&2; exit 1; }}
    sleep 0.1
done
cat {DAEMON}/uri
"""


@dataclass(frozen=True)
class Inner:
    lab: Lab
    uri: str
    pf: str  # PF PCI address
    vfs: tuple[str, ...]

    def vfctl(self, *args: str) -> Any:
        return self.lab.run(["vfctl", "--libvirt-uri", self.uri, *args], timeout=STEP)

    def vfctl_json(self, *args: str, rc: int = 0) -> dict[str, Any]:
        r = self.vfctl(*args, "--json")
        assert r.returncode == rc, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def virsh(self, *args: str) -> str:
        return str(self.lab.run(["virsh", "-c", self.uri, *args], timeout=STEP, check=True).stdout)

    def info_pci(self) -> str:
        return self.virsh("qemu-monitor-command", "--hmp", "inner", "info pci")

    def driver(self, address: str) -> str:
        r = self.lab.run(f"basename $(readlink /sys/bus/pci/devices/{address}/driver)", check=True)
        return str(r.stdout.strip())

    def vf(self, index: int) -> dict[str, Any]:
        vf: dict[str, Any] = self.vfctl_json("show", self.pf)["vfs"][index]
        return vf


def pci_ids(info_pci: str) -> list[str]:
    """vendor:device of every function QEMU's `info pci` lists."""
    return [
        line.rsplit("PCI device ", 1)[1].strip()
        for line in info_pci.splitlines()
        if "PCI device " in line
    ]


@pytest.fixture(scope="module")
def inner(lab: Lab) -> Iterator[Inner]:
    pf = lab.run("basename /sys/bus/pci/drivers/igb/0000:*", check=True).stdout.strip()
    lab.run(f"echo 2 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP, check=True)
    vfs = tuple(
        lab.run(f"for v in /sys/bus/pci/devices/{pf}/virtfn*; do basename $(readlink $v); done",
                check=True).stdout.split()
    )  # fmt: skip
    assert len(vfs) == 2
    uri = lab.run(START_DAEMON, timeout=STEP, check=True).stdout.strip()
    assert uri.startswith("qemu:///system?socket=")
    state = Inner(lab, uri, pf, vfs)
    try:
        xml = lab.write("inner.xml", INNER_XML)
        state.virsh("define", xml)
        state.virsh("start", "inner")
        yield state
    finally:
        lab.run(f"kill $(cat {DAEMON}/pid)", timeout=STEP)
        lab.run(f"echo 0 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP)


def test_inner_domain_starts_without_the_vf(inner: Inner) -> None:
    ids = pci_ids(inner.info_pci())
    assert "8086:29c0" in ids  # the inner q35 host bridge: the monitor answers for that guest
    assert VF_ID not in ids
    assert inner.driver(inner.vfs[0]) == "igbvf"


def test_live_attach_reaches_the_inner_guest(inner: Inner) -> None:
    done = inner.vfctl_json("attach", "inner", inner.pf, "vf0")
    assert done["error"] is None and done["changed"] is True
    assert [(a["op"], a["detail"].rsplit(" ", 1)[1]) for a in done["actions"]] == [
        ("libvirt.attach", "(config)"),
        ("libvirt.attach", "(live)"),
    ]
    assert pci_ids(inner.info_pci()).count(VF_ID) == 1
    # managed='yes': libvirt moved the VF to vfio-pci for QEMU
    assert inner.driver(inner.vfs[0]) == "vfio-pci"
    (att,) = inner.vf(0)["attached_to"]
    assert (att["vm"], att["element"], att["live"], att["config"]) == (
        "inner",
        "hostdev",
        True,
        True,
    )
    again = inner.vfctl_json("attach", "inner", inner.pf, "vf0")
    assert (again["changed"], again["actions"]) == (False, [])


def test_vf_held_by_qemu_blocks_numvfs_even_with_force(inner: Inner) -> None:
    # a real QEMU holds /dev/vfio/<group>: changing numvfs would hang the kernel (LAB.md)
    refused = inner.vfctl_json("disable", inner.pf, "--force", "--check", rc=4)
    message = refused["error"]["message"]
    assert "held open by" in message and inner.vfs[0] in message
    r = inner.lab.run(f"cat /sys/bus/pci/devices/{inner.pf}/sriov_numvfs", check=True)
    assert r.stdout.strip() == "2"


def test_live_detach_leaves_the_inner_guest(inner: Inner) -> None:
    done = inner.vfctl_json("detach", "inner", inner.pf, "vf0")
    assert done["error"] is None
    assert [a["detail"].rsplit(" ", 1)[1] for a in done["actions"]] == ["(live)", "(config)"]
    assert VF_ID not in pci_ids(inner.info_pci())
    assert inner.driver(inner.vfs[0]) == "igbvf"  # managed: the host driver is back
    assert inner.vf(0)["attached_to"] == []


def test_unmanaged_live_attach_of_a_vfctl_bound_vf(inner: Inner) -> None:
    assert inner.vfctl_json("bind", inner.pf, "vf1")["changed"] is True
    assert inner.driver(inner.vfs[1]) == "vfio-pci"
    done = inner.vfctl_json("attach", "inner", inner.pf, "vf1", "--live")
    assert [a["detail"] for a in done["actions"]] == ["attach <hostdev managed=no> (live)"]
    assert pci_ids(inner.info_pci()).count(VF_ID) == 1
    assert inner.vfctl_json("detach", "inner", inner.pf, "vf1")["changed"] is True
    assert VF_ID not in pci_ids(inner.info_pci())
    # managed='no': libvirt left vfctl's binding alone
    assert inner.driver(inner.vfs[1]) == "vfio-pci"
    xml = inner.virsh("dumpxml", "--inactive", "inner")
    assert "<hostdev" not in xml, xml
