"""The libvirt backend against a real, isolated libvirtd: plans, the engine, and re-read XML."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from libvirt_helpers import make_pf, request
from libvirtd import Libvirtd

from vfctl.backends.libvirt import DOCTOR_HINT, LibvirtBackend, hostdev_networks, pool_members
from vfctl.backends.libvirt_xml import (
    ForwardAddressXml,
    HostdevInterfaceXml,
    HostdevXml,
    NetworkXml,
    pci_devices,
)
from vfctl.errors import BackendError, NotFoundError, RefusedError, UsageError
from vfctl.plan import Context, ExecutionFailed, Journal, execute, recover

pytestmark = pytest.mark.libvirtd

CONFIG = 2  # VIR_DOMAIN_AFFECT_CONFIG
INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE


def held(dom: Any, scope: str = "config") -> list[tuple[str, str]]:
    """(element, address) pairs the domain's XML holds, read straight from libvirt."""
    xml = dom.XMLDesc(INACTIVE if scope == "config" else 0)
    return [(f.element, f.address) for f in pci_devices(xml)]


def config_devices(dom: Any) -> list[HostdevXml | HostdevInterfaceXml]:
    return [f.device for f in pci_devices(dom.XMLDesc(INACTIVE))]


def test_config_attach_detach_hostdev(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(), make_pf()
    actions = backend.plan_attach(request(dom, pf, 1))
    assert [(a.op, a.params["scope"]) for a in actions] == [("libvirt.attach", "config")]
    assert execute(ctx, actions).changed
    assert held(dom) == [("hostdev", "0000:01:10.2")]
    (dev,) = config_devices(dom)
    assert isinstance(dev, HostdevXml) and dev.managed is True
    # idempotent: already here is no change
    assert backend.plan_attach(request(dom, pf, 1)) == []
    (att,) = backend.attachments()["0000:01:10.2"]
    assert (att.vm, att.vm_id, att.element, att.config, att.live) == (
        dom.name(),
        dom.UUIDString(),
        "hostdev",
        True,
        False,
    )
    detach = backend.plan_detach(request(dom, pf, 1))
    assert [(a.op, a.params["scope"]) for a in detach] == [("libvirt.detach", "config")]
    execute(ctx, detach)
    assert held(dom) == []
    assert backend.plan_detach(request(dom, pf, 1)) == []


def test_config_attach_interface_with_mac_and_vlan(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(), make_pf()
    execute(
        ctx,
        backend.plan_attach(
            request(dom, pf, 2, mode="interface", mac="52:54:00:12:34:56", vlan=42)
        ),
    )
    (dev,) = config_devices(dom)
    assert isinstance(dev, HostdevInterfaceXml)
    assert (dev.source_address, dev.mac, dev.vlan_tag, dev.driver_name, dev.managed) == (
        "0000:01:10.4",
        "52:54:00:12:34:56",
        42,
        "vfio",
        True,
    )
    # asking again with the same MAC/VLAN is no change; a different VLAN is refused
    assert backend.plan_attach(request(dom, pf, 2, mode="interface", vlan=42)) == []
    with pytest.raises(RefusedError, match="already in"):
        backend.plan_attach(request(dom, pf, 2, mode="interface", vlan=43))
    execute(ctx, backend.plan_attach(request(dom, pf, 2, force=True, mode="interface", vlan=43)))
    (dev,) = config_devices(dom)
    assert isinstance(dev, HostdevInterfaceXml) and dev.vlan_tag == 43
    execute(ctx, backend.plan_detach(request(dom, pf, 2)))
    assert held(dom) == []


def test_managed_no_when_vfctl_bound_vfio(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(), make_pf(vfio=True)
    execute(ctx, backend.plan_attach(request(dom, pf, 0)))
    execute(ctx, backend.plan_attach(request(dom, pf, 1, managed=True)))
    managed = {d.source_address: d.managed for d in config_devices(dom)}
    assert managed == {"0000:01:10.0": False, "0000:01:10.2": True}


def test_live_attach_refused_on_this_host_and_rolled_back(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(running=True), make_pf()
    actions = backend.plan_attach(request(dom, pf, 0))
    assert [a.params["scope"] for a in actions] == ["config", "live"]  # default: LIVE|CONFIG
    with pytest.raises(ExecutionFailed) as info:
        execute(ctx, actions)
    err = info.value
    assert err.exit_code == 6
    assert "VIR_ERR_CONFIG_UNSUPPORTED" in err.message
    assert err.hint == DOCTOR_HINT
    assert "(config)" in " ".join(a.detail for a in err.result.rolled_back)
    assert held(dom, "config") == [] and held(dom, "live") == []
    assert not (ctx.host.root / "run/vfctl/journal.json").exists()


def test_scopes_on_request(backend: LibvirtBackend, make_domain: Any, ctx: Context) -> None:
    running, stopped, pf = make_domain(running=True), make_domain(), make_pf()
    only_config = backend.plan_attach(request(running, pf, 0, config=True))
    assert [a.params["scope"] for a in only_config] == ["config"]
    execute(ctx, only_config)
    assert held(running, "config") == [("hostdev", "0000:01:10.0")]
    assert held(running, "live") == []
    (att,) = backend.attachments()["0000:01:10.0"]
    assert (att.config, att.live) == (True, False)
    with pytest.raises(RefusedError, match="not running"):
        backend.plan_attach(request(stopped, pf, 1, live=True))
    # config already holds it: the default plan on a running domain only adds the live part
    assert [a.params["scope"] for a in backend.plan_attach(request(running, pf, 0))] == ["live"]


def test_duplicates_are_no_change_and_detach_removes_all(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(), make_pf()
    execute(ctx, backend.plan_attach(request(dom, pf, 3, mode="interface")))
    assert backend.plan_attach(request(dom, pf, 3, mode="interface")) == []
    # libvirt 9.0 itself accepts a second <interface type='hostdev'> for the same VF
    twin = HostdevInterfaceXml(managed=True, driver_name="vfio", mac="52:54:00:00:00:99")
    twin.set_source_address("0000:01:10.6")
    dom.attachDeviceFlags(twin.to_xml(), CONFIG)
    assert held(dom) == [("interface", "0000:01:10.6")] * 2
    assert len(backend.attachments()["0000:01:10.6"]) == 1  # one domain, one kind
    detach = backend.plan_detach(request(dom, pf, 3))
    assert len(detach) == 2
    execute(ctx, detach)
    assert held(dom) == []


def test_element_kind_mismatch(backend: LibvirtBackend, make_domain: Any, ctx: Context) -> None:
    dom, pf = make_domain(), make_pf()
    iface = HostdevInterfaceXml(managed=True, driver_name="vfio")
    iface.set_source_address("0000:01:10.0")
    dom.attachDeviceFlags(iface.to_xml(), CONFIG)
    # asking for hostdev while it is held as <interface>: refused, --force replaces
    with pytest.raises(RefusedError) as info:
        backend.plan_attach(request(dom, pf, 0, mode="hostdev"))
    assert info.value.exit_code == 4
    # detach in hostdev mode removes the <interface> that is really there
    execute(ctx, backend.plan_detach(request(dom, pf, 0, mode="hostdev")))
    assert held(dom) == []
    dom.attachDeviceFlags(iface.to_xml(), CONFIG)
    replace = backend.plan_attach(request(dom, pf, 0, force=True, mode="hostdev"))
    assert [a.op for a in replace] == ["libvirt.detach", "libvirt.attach"]
    execute(ctx, replace)
    assert held(dom) == [("hostdev", "0000:01:10.0")]


def test_vf_in_another_domain_refused_then_moved(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    a, b, pf = make_domain(), make_domain(), make_pf()
    execute(ctx, backend.plan_attach(request(a, pf, 1)))
    with pytest.raises(RefusedError, match=a.name()) as info:
        backend.plan_attach(request(b, pf, 1))
    assert info.value.exit_code == 4
    assert held(b) == []
    move = backend.plan_attach(request(b, pf, 1, force=True))
    assert [(a_.op, a_.params["vm"]) for a_ in move] == [
        ("libvirt.detach", a.name()),
        ("libvirt.attach", b.name()),
    ]
    execute(ctx, move)
    assert (held(a), held(b)) == ([], [("hostdev", "0000:01:10.2")])


def test_failed_move_restores_the_other_domain(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    a, b, pf = make_domain(), make_domain(running=True), make_pf()
    execute(ctx, backend.plan_attach(request(a, pf, 2, mode="interface", vlan=7)))
    before = a.XMLDesc(INACTIVE)
    move = backend.plan_attach(request(b, pf, 2, force=True))
    assert [x.params["scope"] for x in move] == ["config", "config", "live"]
    with pytest.raises(ExecutionFailed) as info:
        execute(ctx, move)  # live attach into b fails here: everything is undone
    assert info.value.exit_code == 6
    assert held(b) == []
    assert [f.xml for f in pci_devices(a.XMLDesc(INACTIVE))] == [f.xml for f in pci_devices(before)]


def test_inventory_and_lookup(backend: LibvirtBackend, make_domain: Any, ctx: Context) -> None:
    a, b, pf = make_domain(), make_domain(running=True), make_pf(bus=2)
    execute(ctx, backend.plan_attach(request(a, pf, 0)))
    execute(ctx, backend.plan_attach(request(b, pf, 1, mode="interface", config=True)))
    inv = backend.attachments()
    assert [(x.vm, x.element, x.config, x.live) for x in inv["0000:02:10.0"]] == [
        (a.name(), "hostdev", True, False)
    ]
    assert [(x.vm, x.element, x.config, x.live) for x in inv["0000:02:10.2"]] == [
        (b.name(), "interface", True, False)
    ]
    by_uuid = backend.plan_attach(
        request(a, pf, 0).__class__(vm=a.UUIDString(), pf=pf, vf=pf.vfs[0])
    )
    assert by_uuid == []  # found by UUID, already there
    with pytest.raises(NotFoundError) as info:
        backend.plan_attach(request(a, pf, 0).__class__(vm="no-such-vm", pf=pf, vf=pf.vfs[0]))
    assert info.value.exit_code == 3


def test_usage_errors(backend: LibvirtBackend, make_domain: Any) -> None:
    dom, pf = make_domain(), make_pf()
    for opts in (
        {"mac": "52:54:00:00:00:01"},
        {"mode": "interface", "vlan": 5000},
        {"mode": "interface", "mac": "zz"},
        {"mode": "macvtap"},
    ):
        with pytest.raises(UsageError):
            backend.plan_attach(request(dom, pf, 0, **opts))
    assert held(dom) == []


def test_hostdev_network_pools(backend: LibvirtBackend, make_domain: Any) -> None:
    dom = make_domain()
    pool = ET.Element("network")
    ET.SubElement(pool, "name").text = "vfctl-pool"
    fwd = ET.SubElement(pool, "forward", mode="hostdev", managed="yes")
    ET.SubElement(fwd, "pf", dev="eth9")
    bridge = ET.Element("network")  # not a VF pool
    ET.SubElement(bridge, "name").text = "vfctl-bridge"
    ET.SubElement(bridge, "forward", mode="bridge")
    ET.SubElement(bridge, "bridge", name="br9")
    nets = []
    try:
        for n in (pool, bridge):
            nets.append(backend.conn.networkDefineXML(ET.tostring(n, encoding="unicode")))
        assert hostdev_networks(backend.networks()) == {"eth9": "vfctl-pool"}
        # a VF of a pooled PF is not attached directly unless forced
        with pytest.raises(RefusedError, match="vfctl-pool"):
            backend.plan_attach(request(dom, make_pf("eth9"), 0))
        assert len(backend.plan_attach(request(dom, make_pf("eth9"), 0, force=True))) == 1
        assert len(backend.plan_attach(request(dom, make_pf("eth7"), 0))) == 1
        # libvirt checks listed VFs exist, so a listed pool is built here as data
        listed = NetworkXml(
            name="vfctl-listed",
            forward_mode="hostdev",
            addresses=[ForwardAddressXml(domain=0, bus=3, slot=0x10, function=2)],
        )
        pfs = [make_pf("eth9", bus=1), make_pf("eth8", bus=4)]
        members = pool_members([*backend.networks(), listed], pfs)
        assert members == {
            **{f"0000:01:10.{2 * i}": "vfctl-pool" for i in range(4)},
            "0000:03:10.2": "vfctl-listed",
        }
    finally:
        for net in nets:
            net.undefine()


def test_unreachable_daemon(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as info:
        LibvirtBackend.connect(f"qemu:///system?socket={tmp_path}/nothing-here")
    assert info.value.exit_code == 6
    assert "VIR_ERR_SYSTEM_ERROR" in info.value.message
    assert "libvirtd running" in (info.value.hint or "")


def test_daemon_stopped_under_a_connection(tmp_path: Path) -> None:
    daemon = Libvirtd(tmp_path / "d")
    daemon.start()
    try:
        be = LibvirtBackend.connect(daemon.uri)
        assert be.attachments() == {}
    finally:
        daemon.stop()
    with pytest.raises(BackendError) as info:
        be.attachments()
    assert info.value.exit_code == 6
    assert info.value.message.startswith("libvirt list domains: VIR_ERR_")


def test_backend_module_does_not_import_libvirt() -> None:
    code = (
        "import sys, vfctl.backends.libvirt, vfctl.backends.libvirt_xml; "
        "sys.exit('libvirt' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_journal_of_a_killed_run_is_rolled_back(
    backend: LibvirtBackend, make_domain: Any, ctx: Context
) -> None:
    dom, pf = make_domain(), make_pf()
    actions = backend.plan_attach(request(dom, pf, 0, mode="interface", vlan=9))
    execute(ctx, actions)
    # as if the run was killed right after its last step: the journal is all a new process has
    records = json.loads(json.dumps([a.to_record() for a in actions]))
    Journal(ctx.host).save({"pid": 2**22 + 1, "actions": records, "done": len(actions)})
    fresh = Context(ctx.host, lambda name, params: LibvirtBackend.from_params(params))
    result = recover(fresh)
    assert result.error is None and result.changed
    assert held(dom) == []
