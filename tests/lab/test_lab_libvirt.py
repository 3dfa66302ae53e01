"""Live attach on a real IOMMU: vfctl + libvirtd inside the lab guest, an inner TCG domain.

The lab guest has an emulated Intel IOMMU and real vfio-pci. Inside it, the isolated libvirtd of
the libvirt tests (tests/libvirt/libvirtd.py) runs an inner q35 domain with no disk and no OS;
vfctl live-attaches an igb VF to it and QEMU's own monitor (`info pci`) must list the VF
(8086:10ca) on the inner guest's bus, then the detach must remove it again.

The inner domain uses native PCIe hotplug on its root ports (ACPI PCI hotplug off): with ACPI
hotplug, QEMU completes an unplug only when the guest OS ejects the device, and this guest has
no OS, so every live detach would time out. Native hotplug of a slot the guest never powered
completes at once.

One module, one scenario: a fixture runs every step in order and records what it saw; the tests
assert on the record. QEMU under TCG occasionally crashes in nested vfio (an iotlb_to_section
assertion in QEMU 10) or hangs: the whole scenario then runs once more on a fresh boot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from .runner import REPO, Lab, LabConfig, Result, once_more_if_guest_died

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

    def vfctl(self, *args: str) -> Result:
        return self.lab.run(["vfctl", "--libvirt-uri", self.uri, *args, "--json"], timeout=STEP)

    def virsh(self, *args: str) -> str:
        return str(self.lab.run(["virsh", "-c", self.uri, *args], timeout=STEP, check=True).stdout)

    def info_pci(self) -> list[str]:
        return pci_ids(self.virsh("qemu-monitor-command", "--hmp", "inner", "info pci"))

    def driver(self, address: str) -> str:
        r = self.lab.run(f"basename $(readlink /sys/bus/pci/devices/{address}/driver)", check=True)
        return str(r.stdout.strip())

    def attached(self, index: int) -> Any:
        r = self.vfctl("show", self.pf)
        return json.loads(r.stdout)["vfs"][index]["attached_to"] if r.returncode == 0 else r

    def held(self, index: int) -> Any:
        r = self.vfctl("show", self.pf)
        return json.loads(r.stdout)["vfs"][index]["held_by"] if r.returncode == 0 else r


def expose_runtime_dir(lab: Lab) -> None:
    """The isolated daemon keeps its runtime dir (pid files) in its own mount namespace: expose
    it where a system libvirtd keeps it, so vfctl maps the QEMU holder to its domain."""
    lab.run(
        f"[ -e /run/libvirt/qemu ] || {{ mkdir -p /run/libvirt && "
        f"ln -s {DAEMON}/d/run/qemu /run/libvirt/qemu; }}",
        check=True,
    )


def pci_ids(info_pci: str) -> list[str]:
    """vendor:device of every function QEMU's `info pci` lists."""
    return [
        line.rsplit("PCI device ", 1)[1].strip()
        for line in info_pci.splitlines()
        if "PCI device " in line
    ]


def scenario(lab: Lab) -> dict[str, Any]:
    """Every step, in order, on one boot; what each step returned and what the guest then showed."""
    seen: dict[str, Any] = {}
    pf = lab.run("basename /sys/bus/pci/drivers/igb/0000:*", check=True).stdout.strip()
    lab.run(f"echo 2 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP, check=True)
    vfs = tuple(
        lab.run(f"for v in /sys/bus/pci/devices/{pf}/virtfn*; do basename $(readlink $v); done",
                check=True).stdout.split()
    )  # fmt: skip
    uri = lab.run(START_DAEMON, timeout=STEP, check=True).stdout.strip()
    i = Inner(lab, uri, pf, vfs)
    seen.update(pf=pf, vfs=vfs, uri=uri)
    i.virsh("define", lab.write("inner.xml", INNER_XML))
    i.virsh("start", "inner")
    seen["start"] = (i.info_pci(), i.driver(vfs[0]))
    seen["attach"] = i.vfctl("attach", "inner", pf, "vf0")
    seen["attached"] = (i.info_pci(), i.driver(vfs[0]), i.attached(0))
    expose_runtime_dir(lab)
    qemu_pid = lab.run(f"cat {DAEMON}/d/run/qemu/inner.pid", check=True).stdout.strip()
    seen["held"] = (i.held(0), qemu_pid)
    seen["attach_again"] = i.vfctl("attach", "inner", pf, "vf0")
    seen["disable"] = i.vfctl("disable", pf, "--force", "--check")
    seen["numvfs"] = lab.run(f"cat /sys/bus/pci/devices/{pf}/sriov_numvfs", check=True).stdout
    seen["detach"] = i.vfctl("detach", "inner", pf, "vf0")
    seen["detached"] = (i.info_pci(), i.driver(vfs[0]), i.attached(0))
    seen["held_after"] = i.held(0)
    seen["bind"] = i.vfctl("bind", pf, "vf1")
    seen["bound_driver"] = i.driver(vfs[1])
    seen["attach_live"] = i.vfctl("attach", "inner", pf, "vf1", "--live")
    seen["attached_live"] = i.info_pci()
    seen["detach_live"] = i.vfctl("detach", "inner", pf, "vf1")
    seen["detached_live"] = (i.info_pci(), i.driver(vfs[1]))
    seen["inactive_xml"] = i.virsh("dumpxml", "--inactive", "inner")
    lab.run(f"kill $(cat {DAEMON}/pid)", timeout=STEP)
    lab.run(f"echo 0 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP)
    return seen


@pytest.fixture(scope="module")
def seen(lab: Lab) -> dict[str, Any]:
    return once_more_if_guest_died(lab, scenario)


def ok(r: Result, rc: int = 0) -> dict[str, Any]:
    assert r.returncode == rc, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_inner_domain_starts_without_the_vf(seen: dict[str, Any]) -> None:
    ids, driver = seen["start"]
    assert "8086:29c0" in ids  # the inner q35 host bridge: the monitor answers for that guest
    assert VF_ID not in ids
    assert driver == "igbvf"


def test_live_attach_reaches_the_inner_guest(seen: dict[str, Any]) -> None:
    done = ok(seen["attach"])
    assert done["error"] is None and done["changed"] is True
    assert [(a["op"], a["detail"].rsplit(" ", 1)[1]) for a in done["actions"]] == [
        ("libvirt.attach", "(config)"),
        ("libvirt.attach", "(live)"),
    ]
    ids, driver, attached = seen["attached"]
    assert ids.count(VF_ID) == 1
    # managed='yes': libvirt moved the VF to vfio-pci for QEMU
    assert driver == "vfio-pci"
    (att,) = attached
    assert (att["vm"], att["element"], att["live"], att["config"]) == (
        "inner",
        "hostdev",
        True,
        True,
    )
    again = ok(seen["attach_again"])
    assert (again["changed"], again["actions"]) == (False, [])


def test_vf_held_by_qemu_blocks_numvfs_even_with_force(seen: dict[str, Any]) -> None:
    # a real QEMU holds /dev/vfio/<group>: changing numvfs would hang the kernel (LAB.md)
    message = ok(seen["disable"], rc=4)["error"]["message"]
    assert "held open by" in message and seen["vfs"][0] in message
    assert "VM inner" in message
    assert seen["numvfs"].strip() == "2"


def test_held_by_is_the_real_qemu_process_and_its_domain(seen: dict[str, Any]) -> None:
    """Issue 12 §3 on a real kernel: the holder of /dev/vfio/N, mapped through the pid file."""
    held, qemu_pid = seen["held"]
    assert held == {"vm": "inner", "pid": int(qemu_pid), "backend": "libvirt"}
    assert seen["held_after"] is None  # detached: QEMU closed the group


def test_live_detach_leaves_the_inner_guest(seen: dict[str, Any]) -> None:
    done = ok(seen["detach"])
    assert done["error"] is None
    assert [a["detail"].rsplit(" ", 1)[1] for a in done["actions"]] == ["(live)", "(config)"]
    ids, driver, attached = seen["detached"]
    assert VF_ID not in ids
    assert driver == "igbvf"  # managed: the host driver is back
    assert attached == []


def test_unmanaged_live_attach_of_a_vfctl_bound_vf(seen: dict[str, Any]) -> None:
    assert ok(seen["bind"])["changed"] is True
    assert seen["bound_driver"] == "vfio-pci"
    done = ok(seen["attach_live"])
    assert [a["detail"] for a in done["actions"]] == ["attach <hostdev managed=no> (live)"]
    assert seen["attached_live"].count(VF_ID) == 1
    assert ok(seen["detach_live"])["changed"] is True
    ids, driver = seen["detached_live"]
    assert VF_ID not in ids
    # managed='no': libvirt left vfctl's binding alone
    assert driver == "vfio-pci"
    assert "<hostdev" not in seen["inactive_xml"], seen["inactive_xml"]
