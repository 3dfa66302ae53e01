"""libvirt attach/detach planning as pure functions: domains' XML in, actions out.

The facts are what ``LibvirtBackend`` reads (every domain's live and inactive XML as
``Holding``s, the hostdev networks); no libvirtd here. The real daemon runs the same plans
in tests/libvirt. Why libvirt is not trusted to refuse duplicates or wrong-kind detaches:
libvirt ``src/qemu/qemu_hotplug.c`` (``qemuDomainDetachDeviceLive`` matches the device
class it is given) and ``src/conf/domain_conf.c`` (``virDomainHostdevFind``).
"""

from __future__ import annotations

import pytest
from attach_facts import held, request, vf, with_mac

from vfctl.backends.libvirt_plan import (
    DomainInfo,
    Holding,
    LibvirtFacts,
    plan_attach,
    plan_detach,
)
from vfctl.backends.libvirt_xml import HostdevInterfaceXml, HostdevXml, NetworkXml, pci_devices
from vfctl.errors import RefusedError, UsageError

URI = "qemu:///system"
WEB = DomainInfo("web", "11111111-2222-3333-4444-555555555555", active=True, persistent=True)
DB = DomainInfo("db", "99999999-2222-3333-4444-555555555555", active=False, persistent=True)
VF3 = "0000:03:10.6"


def domain_xml(*devices: str) -> str:
    return f"<domain type='kvm'><name>x</name><devices>{''.join(devices)}</devices></domain>"


def hostdev(addr: str = VF3, managed: bool = False) -> str:
    dev = HostdevXml(managed=managed)
    dev.set_source_address(addr)
    return dev.to_xml()


def iface(addr: str = VF3, mac: str | None = None) -> str:
    dev = HostdevInterfaceXml(managed=True, driver_name="vfio", mac=mac)
    dev.set_source_address(addr)
    return dev.to_xml()


def holdings(dom: DomainInfo, scope: str, *devices: str) -> list[Holding]:
    return [Holding(dom.name, dom.uuid, scope, f) for f in pci_devices(domain_xml(*devices))]


def facts(*hs: Holding, dom: DomainInfo = WEB, nets: tuple[NetworkXml, ...] = ()) -> LibvirtFacts:
    return LibvirtFacts(URI, dom, hs, nets)


def test_hostdev_default_config_and_live_managed_no_when_vfctl_bound_vfio() -> None:
    acts = plan_attach(facts(), request("web"))
    assert [(a.op, a.params["scope"]) for a in acts] == [
        ("libvirt.attach", "config"),
        ("libvirt.attach", "live"),
    ]
    assert "managed='no'" in acts[0].params["xml"] or 'managed="no"' in acts[0].params["xml"]
    assert acts[0].detail == "attach <hostdev managed=no> (config)"
    assert acts[0].params["domain"] == WEB.uuid and acts[0].params["address"] == VF3
    undo = acts[0].undo
    assert undo is not None and undo.op == "libvirt.detach" and undo.params == acts[0].params


def test_managed_yes_when_the_vf_is_on_its_network_driver() -> None:
    acts = plan_attach(facts(), request("web", vf(driver="ixgbevf")))
    assert acts[0].detail == "attach <hostdev managed=yes> (config)"
    forced = plan_attach(facts(), request("web", vf(driver="ixgbevf"), managed=False))
    assert forced[0].detail == "attach <hostdev managed=no> (config)"


def test_stopped_domain_gets_config_only_and_live_is_refused() -> None:
    assert [a.params["scope"] for a in plan_attach(facts(dom=DB), request("db"))] == ["config"]
    with pytest.raises(RefusedError, match="domain db is not running"):
        plan_attach(facts(dom=DB), request("db", live=True))
    transient = DomainInfo("tmp", "t", active=True, persistent=False)
    with pytest.raises(RefusedError, match="transient"):
        plan_attach(facts(dom=transient), request("tmp", config=True))


def test_interface_mode_carries_mac_and_vlan_and_defaults_the_vfs_mac() -> None:
    acts = plan_attach(facts(), request("web", mode="interface", mac="52:54:00:AA:BB:CC", vlan=7))
    xml = acts[0].params["xml"]
    assert "<interface" in xml and "52:54:00:aa:bb:cc" in xml and "<tag id" in xml
    assert acts[0].detail.startswith("attach <interface type=hostdev managed=no mac=52:54")
    quiet = plan_attach(
        facts(), request("web", with_mac(vf(), "02:00:00:00:00:03"), mode="interface")
    )
    assert "02:00:00:00:00:03" in quiet[0].params["xml"]


def test_bad_requests_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--mac/--vlan need --mode interface"):
        plan_attach(facts(), request("web", mac="52:54:00:00:00:01"))
    with pytest.raises(UsageError, match="invalid MAC"):
        plan_attach(facts(), request("web", mode="interface", mac="nope"))
    with pytest.raises(UsageError, match="invalid mode"):
        plan_attach(facts(), request("web", mode="macvtap"))


def test_already_attached_as_asked_is_a_no_op() -> None:
    hs = holdings(WEB, "config", hostdev()) + holdings(WEB, "live", hostdev())
    assert plan_attach(facts(*hs), request("web")) == []


def test_other_element_kind_in_the_same_domain_is_refused_unless_forced() -> None:
    hs = holdings(WEB, "config", iface()) + holdings(WEB, "live", iface())
    with pytest.raises(RefusedError, match=r"already in web \(config\) as <interface"):
        plan_attach(facts(*hs), request("web"))
    acts = plan_attach(facts(*hs), request("web", force=True))
    assert [(a.op, a.params["scope"]) for a in acts] == [
        ("libvirt.detach", "config"),
        ("libvirt.attach", "config"),
        ("libvirt.detach", "live"),
        ("libvirt.attach", "live"),
    ]
    assert acts[0].params["xml"] == hs[0].found.xml  # the exact element the domain has


def test_vf_in_another_domain_is_refused_and_force_moves_it_live_first() -> None:
    hs = holdings(DB, "config", hostdev()) + holdings(DB, "live", hostdev())
    with pytest.raises(
        RefusedError, match=r"attached to another domain: db \(config\), db \(live\)"
    ):
        plan_attach(facts(*hs), request("web"))
    acts = plan_attach(facts(*hs), request("web", force=True))
    assert [(a.op, a.params["vm"], a.params["scope"]) for a in acts] == [
        ("libvirt.detach", "db", "live"),
        ("libvirt.detach", "db", "config"),
        ("libvirt.attach", "web", "config"),
        ("libvirt.attach", "web", "live"),
    ]


def test_a_process_holding_the_group_that_no_domain_names_is_refused() -> None:
    with pytest.raises(RefusedError, match=r"held by VM vm101 \(pid 4242\), which no domain"):
        plan_attach(facts(), request("web", held(vf(), "vm101")))
    assert plan_attach(facts(), request("web", held(vf(), "web")))  # its own QEMU: fine
    assert plan_attach(facts(), request("web", held(vf(), None), force=True))


def test_vf_of_a_hostdev_network_pool_is_refused() -> None:
    net = NetworkXml.from_xml(
        "<network><name>vfpool</name><forward mode='hostdev' managed='yes'>"
        "<pf dev='eth2'/></forward></network>"
    )
    with pytest.raises(RefusedError, match="libvirt hostdev network 'vfpool'"):
        plan_attach(facts(nets=(net,)), request("web"))


def test_detach_takes_exactly_the_elements_holding_the_vf_live_first() -> None:
    other = "0000:03:10.4"
    hs = holdings(WEB, "config", hostdev(other), iface()) + holdings(
        WEB, "live", iface(), hostdev(other)
    )
    acts = plan_detach(facts(*hs), request("web"))
    assert [(a.op, a.params["scope"], a.params["address"]) for a in acts] == [
        ("libvirt.detach", "live", VF3),
        ("libvirt.detach", "config", VF3),
    ]
    assert all(a.params["xml"] == iface() or "<interface" in a.params["xml"] for a in acts)
    assert acts[0].undo is not None and acts[0].undo.op == "libvirt.attach"
    only = plan_detach(facts(*hs), request("web", config=True))
    assert [a.params["scope"] for a in only] == ["config"]
    assert plan_detach(facts(*holdings(WEB, "config", hostdev(other))), request("web")) == []
