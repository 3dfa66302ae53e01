"""A pool on a real IOMMU: `vfctl pool create` + `attach --pool`, then libvirt hands a VF out.

Inside the lab guest (emulated Intel IOMMU, real vfio-pci, real igb VFs), vfctl makes a hostdev
network of two igb VFs with VLAN 42 and puts an inner q35 domain on it with `attach --pool`.
When libvirt starts the domain it allocates one free VF of the network (libvirt
``networkAllocatePort``): QEMU's monitor must list an igbvf function, the PF must report the
pool's VLAN on that VF, `pool show` must say which member the domain holds, and removing that
member must be refused while the domain runs.

One module, one scenario, recorded by a fixture (as tests/lab/test_lab_libvirt.py, whose
inner domain, daemon start and retry on a crashed TCG guest it shares).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .runner import Lab, LabConfig, Result, once_more_if_guest_died
from .test_lab_libvirt import (
    DAEMON,
    INNER_XML,
    START_DAEMON,
    STEP,
    VF_ID,
    Inner,
    expose_runtime_dir,
    pci_ids,
)

LAB_CONFIG = LabConfig(igb_pfs=1, nvme=False, cmdline_extra=("no_timer_check",))


def scenario(lab: Lab) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    pf = lab.run("basename /sys/bus/pci/drivers/igb/0000:*", check=True).stdout.strip()
    netdev = lab.run(f"ls /sys/bus/pci/devices/{pf}/net", check=True).stdout.split()[0]
    lab.run(f"echo 2 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP, check=True)
    vfs = tuple(
        lab.run(f"for v in /sys/bus/pci/devices/{pf}/virtfn*; do basename $(readlink $v); done",
                check=True).stdout.split()
    )  # fmt: skip
    uri = lab.run(START_DAEMON, timeout=STEP, check=True).stdout.strip()
    i = Inner(lab, uri, pf, vfs)
    seen.update(pf=pf, vfs=vfs)
    seen["create"] = i.vfctl("pool", "create", "tenant", pf, "vf0-1", "--vlan", "42",
                             "--backend", "libvirt")  # fmt: skip
    seen["net_xml"] = i.virsh("net-dumpxml", "tenant")
    # libvirt programs the VF through the PF at start and refuses while the PF is down
    # ("Unable to configure VF 0 of PF 'eth0' because the PF is not online")
    lab.run(f"ip link set {netdev} up", check=True)
    i.virsh("define", lab.write("inner.xml", INNER_XML))
    seen["attach"] = i.vfctl("attach", "inner", "--pool", "tenant")
    i.virsh("start", "inner")
    seen["info_pci"] = pci_ids(_info_pci_once_enumerated(lab, uri))
    expose_runtime_dir(lab)  # so `pool show` names the domain that holds the member
    seen["ip_link"] = lab.run(f"ip link show {netdev}", check=True).stdout
    seen["show"] = i.vfctl("pool", "show", "tenant")
    seen["live_xml"] = i.virsh("dumpxml", "inner")
    held = [m for m in _doc(seen["show"]).get("members", []) if m["state"] == "held"]
    target = held[0]["vf"] if held else 0
    seen["remove_held"] = i.vfctl("pool", "remove", "tenant", pf, f"vf{target}")
    seen["delete_in_use"] = i.vfctl("pool", "delete", "tenant", "--force")
    i.virsh("destroy", "inner")
    seen["detach"] = i.vfctl("detach", "inner", "--pool", "tenant")
    seen["delete"] = i.vfctl("pool", "delete", "tenant")
    lab.run(f"kill $(cat {DAEMON}/pid)", timeout=STEP)
    lab.run(f"echo 0 > /sys/bus/pci/devices/{pf}/sriov_numvfs", timeout=STEP)
    return seen


def _info_pci_once_enumerated(lab: Lab, uri: str) -> str:
    """QEMU's `info pci` once the inner firmware has numbered every root port's bus.

    Right after `virsh start` the firmware has not run yet under nested TCG: a root port
    reads "secondary bus 0" (or 255) and `info pci` lists nothing behind it, the VF included.
    The firmware numbers the ports one by one, so a function behind one port is not enough:
    CI once read the listing while pci.1 (the USB controller) was numbered and the VF's port
    still read "secondary bus 255". Poll (bounded) until the VF is listed, or until no port
    is left unnumbered and something sits behind one; then return that listing.
    """
    script = f"""
    for i in $(seq 90); do
        out=$(virsh -c '{uri}' qemu-monitor-command --hmp inner 'info pci')
        case "$out" in
            *"PCI device {VF_ID}"*) break;;
            *"secondary bus 255."*|*"secondary bus 0."*) ;;
            *"Bus  1,"*|*"Bus  2,"*|*"Bus  3,"*) break;;
        esac
        sleep 1
    done
    printf '%s\n' "$out"
    """
    return str(lab.run(script, timeout=STEP, check=True).stdout)


def _doc(r: Result) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(r.stdout)
    except ValueError:
        return {}
    return doc


@pytest.fixture(scope="module")
def seen(lab: Lab) -> dict[str, Any]:
    return once_more_if_guest_died(lab, scenario)


def ok(r: Result, rc: int = 0) -> dict[str, Any]:
    assert r.returncode == rc, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return _doc(r)


def test_pool_network_is_exactly_the_vfs_with_the_vlan(seen: dict[str, Any]) -> None:
    created = ok(seen["create"])
    assert created["changed"] is True
    assert any("is down" in w for w in created["warnings"]), created  # the PF is still down
    xml = seen["net_xml"]
    assert "<forward mode='hostdev' managed='no'>" in xml and "<pf " not in xml
    assert xml.count("<address type='pci'") == 2 and "<tag id='42'/>" in xml


def test_started_domain_gets_a_pool_vf_with_the_pools_vlan(seen: dict[str, Any]) -> None:
    assert [a["op"] for a in ok(seen["attach"])["actions"]] == ["libvirt_pool.iface_attach"]
    assert seen["info_pci"].count(VF_ID) == 1
    show = ok(seen["show"])
    held = [m for m in show["members"] if m["state"] == "held"]
    assert len(held) == 1 and held[0]["held_by"] == "inner", show
    assert held[0]["address"] in seen["vfs"]
    # the PF programs the pool's VLAN on the VF libvirt handed out ("vf N ... vlan 42")
    line = next(
        ln for ln in seen["ip_link"].splitlines() if ln.strip().startswith(f"vf {held[0]['vf']} ")
    )
    assert "vlan 42" in line, seen["ip_link"]


def test_held_member_and_used_pool_are_refused(seen: dict[str, Any]) -> None:
    assert ok(seen["remove_held"], rc=4)["error"]["kind"] == "refused"
    message = ok(seen["delete_in_use"], rc=4)["error"]["message"]
    assert "running" in message and "inner" in message


def test_detach_and_delete_after_the_domain_stops(seen: dict[str, Any]) -> None:
    assert ok(seen["detach"])["changed"] is True
    assert ok(seen["delete"])["changed"] is True
