"""Builders shared by the libvirt tests: a minimal domain, a PF with fake VF addresses, requests."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from vfctl.backends.base import AttachRequest
from vfctl.model import PF, VF


def domain_xml(name: str) -> str:
    """A TCG q35 guest with no disk: enough for libvirt to define, start and edit."""
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "uuid").text = str(uuid.uuid4())
    ET.SubElement(dom, "memory", unit="MiB").text = "64"
    ET.SubElement(dom, "vcpu").text = "1"
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="q35").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(dom, encoding="unicode")


def make_pf(netdev: str = "eth9", bus: int = 1, count: int = 4, vfio: bool = False) -> PF:
    """A PF whose VFs sit at fake addresses (config attach accepts absent devices)."""
    vfs = tuple(
        VF(
            index=i,
            address=f"0000:{bus:02x}:10.{2 * i}",
            driver="vfio-pci" if vfio else "igbvf",
            driver_override=None,
            netdev=None if vfio else f"{netdev}v{i}",
            iommu_group=20 + i,
            vendor_id="8086",
            device_id="10ca",
        )
        for i in range(count)
    )
    return PF(
        address=f"0000:{bus:02x}:00.0",
        netdev=netdev,
        netdevs=(netdev,),
        driver="igb",
        vendor_id="8086",
        device_id="10c9",
        class_code="020000",
        name=None,
        total_vfs=7,
        cap_total_vfs=8,
        initial_vfs=8,
        num_vfs=count,
        vf_offset=128,
        vf_stride=2,
        vf_device_id="10ca",
        autoprobe=True,
        numa_node=None,
        iommu_group=10,
        link=None,
        ari=False,
        vfs=vfs,
    )


def request(
    dom: object, pf: PF, index: int = 0, force: bool = False, **options: object
) -> AttachRequest:
    vf = pf.vf(index)
    assert vf is not None
    name: str = dom.name()  # type: ignore[attr-defined]
    return AttachRequest(vm=name, pf=pf, vf=vf, force=force, options=dict(options))
