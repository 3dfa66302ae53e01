"""A real, isolated libvirtd for the whole session, plus small helpers to build domains and VFs."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from libvirtd import Libvirtd, LibvirtdError

from vfctl.backends.base import AttachRequest
from vfctl.backends.libvirt import LibvirtBackend
from vfctl.host.sysfs import Host
from vfctl.model import PF, VF
from vfctl.plan import Context


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("VFCTL_LIBVIRTD") == "required"


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Libvirtd]:
    daemon = Libvirtd(tmp_path_factory.mktemp("libvirtd"))
    try:
        daemon.start()
    except LibvirtdError as exc:
        if _required():
            pytest.fail(f"isolated libvirtd could not start (required in CI): {exc}")
        pytest.skip(f"isolated libvirtd could not start: {exc}")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def backend(libvirtd: Libvirtd) -> Iterator[LibvirtBackend]:
    be = LibvirtBackend.connect(libvirtd.uri)
    yield be
    be.close()


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


@pytest.fixture
def make_domain(backend: LibvirtBackend) -> Iterator[Callable[..., object]]:
    """Define (and optionally start) uniquely named domains; all removed afterwards."""
    made: list[object] = []

    def make(running: bool = False) -> object:
        name = f"vfctl-t-{uuid.uuid4().hex[:8]}"
        dom = backend.conn.defineXML(domain_xml(name))
        made.append(dom)
        if running:
            dom.create()
        return dom

    yield make
    for dom in made:
        try:
            if dom.isActive():  # type: ignore[attr-defined]
                dom.destroy()  # type: ignore[attr-defined]
            dom.undefine()  # type: ignore[attr-defined]
        except Exception:  # already gone
            pass


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


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """An engine context whose backend factory reconnects from action params, like the CLI's."""
    return Context(Host(tmp_path), lambda name, params: LibvirtBackend.from_params(params))
