"""The declarative XML classes: object -> XML -> object round trips, and parsing libvirt's form."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfctl.backends.libvirt_xml import (
    ForwardAddressXml,
    HostdevInterfaceXml,
    HostdevXml,
    NetworkXml,
    pci_devices,
)

addresses = st.builds(
    lambda d, b, s, f: f"{d:04x}:{b:02x}:{s:02x}.{f:x}",
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.integers(0, 0x1F),
    st.integers(0, 7),
)
macs = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda bs: ":".join(f"{b:02x}" for b in bs)
)


@given(addresses, st.booleans())
def test_hostdev_round_trip(address: str, managed: bool) -> None:
    dev = HostdevXml(managed=managed)
    dev.set_source_address(address)
    back = HostdevXml.from_xml(dev.to_xml())
    assert back == dev
    assert back.source_address == address
    el = ET.fromstring(dev.to_xml())
    assert (el.tag, el.get("mode"), el.get("type")) == ("hostdev", "subsystem", "pci")
    assert el.get("managed") == ("yes" if managed else "no")


@given(addresses, st.one_of(st.none(), macs), st.one_of(st.none(), st.integers(0, 4095)))
def test_interface_round_trip(address: str, mac: str | None, vlan: int | None) -> None:
    dev = HostdevInterfaceXml(managed=True, mac=mac, vlan_tag=vlan, driver_name="vfio")
    dev.set_source_address(address)
    back = HostdevInterfaceXml.from_xml(dev.to_xml())
    assert back == dev
    el = ET.fromstring(dev.to_xml())
    assert el.get("type") == "hostdev"
    assert el.find("source/address").get("type") == "pci"  # type: ignore[union-attr]
    assert el.find("driver").get("name") == "vfio"  # type: ignore[union-attr]
    assert (el.find("mac") is None) == (mac is None)
    tag = el.find("vlan/tag")
    assert (tag is None) if vlan is None else (tag is not None and tag.get("id") == str(vlan))


def test_network_round_trip() -> None:
    net = NetworkXml(
        name="pool",
        forward_mode="hostdev",
        forward_managed=True,
        pf_dev="eth2",
        addresses=[ForwardAddressXml(domain=0, bus=1, slot=0x10, function=2)],
    )
    back = NetworkXml.from_xml(net.to_xml())
    assert back == net
    assert [a.pci_address for a in back.addresses] == ["0000:01:10.2"]


def test_parses_libvirt_formatted_domain() -> None:
    # the shape libvirt 9.0 prints: 0x-hex fields, guest address, alias, extra elements
    dom = ET.Element("domain")
    devices = ET.SubElement(dom, "devices")
    h = ET.SubElement(devices, "hostdev", mode="subsystem", type="pci", managed="no")
    ET.SubElement(h, "driver", name="vfio")
    ET.SubElement(
        ET.SubElement(h, "source"),
        "address",
        domain="0x0000",
        bus="0x01",
        slot="0x10",
        function="0x2",
    )
    ET.SubElement(
        h, "address", type="pci", domain="0x0000", bus="0x06", slot="0x00", function="0x0"
    )
    i = ET.SubElement(devices, "interface", type="hostdev", managed="yes")
    ET.SubElement(i, "mac", address="52:54:00:aa:bb:cc")
    ET.SubElement(
        ET.SubElement(i, "source"),
        "address",
        type="pci",
        domain="0",
        bus="1",
        slot="16",
        function="4",
    )
    ET.SubElement(ET.SubElement(i, "vlan"), "tag", id="42")
    ET.SubElement(devices, "interface", type="network")  # not a PCI holder
    ET.SubElement(devices, "hostdev", mode="subsystem", type="usb")  # not PCI either
    found = list(pci_devices(ET.tostring(dom, encoding="unicode")))
    assert [(f.element, f.address) for f in found] == [
        ("hostdev", "0000:01:10.2"),
        ("interface", "0000:01:10.4"),
    ]
    assert found[0].device.managed is False
    assert isinstance(found[1].device, HostdevInterfaceXml)
    assert (found[1].device.mac, found[1].device.vlan_tag) == ("52:54:00:aa:bb:cc", 42)
    # the exact element text is kept (guest address included) so detach hits that element
    assert ET.fromstring(found[0].xml).find("address[@type='pci']") is not None


def test_bad_values_are_reported_with_their_path() -> None:
    with pytest.raises(ValueError, match=r"hostdev@managed"):
        HostdevXml.from_xml("<hostdev managed='maybe'/>")
    with pytest.raises(ValueError, match="expected <hostdev>"):
        HostdevXml.from_xml("<interface/>")
    with pytest.raises(TypeError):
        HostdevXml(colour="red")


# ---- reading hand-written XML the way libvirt does (issue 12 §5) ---------------------------
# libvirt src/conf/device_conf.c virPCIDeviceAddressParseXML: every attribute through
# virXMLPropUInt(node, name, 0, ...) (src/util/virxml.c) = virStrToLong_uip(text, NULL, 0):
# strtoul base 0, whole string, no sign; an absent attribute leaves the memset 0.


@pytest.mark.parametrize(
    "attrs, want",
    [
        ("bus='0x0a' slot='0x10' function='0x2'", "0000:0a:10.2"),  # no domain: 0
        ("domain='0' bus='012' slot='0x10'", "0000:0a:10.0"),  # octal bus, no function: 0
        ("domain='0x0000' bus='12' slot='16' function='4'", "0000:0c:10.4"),  # decimal
        ("domain='0x0001' bus='06' slot='0x00' function='0x1'", "0001:06:00.1"),  # 06 octal = 6
        ("bus=' 0x3' slot='0X1f' function='+7'", "0000:03:1f.7"),  # strtoul's whitespace/sign
    ],
)
def test_address_numbers_read_like_libvirt(attrs: str, want: str) -> None:
    xml = (
        "<domain><name>d</name><devices><hostdev mode='subsystem' type='pci'>"
        f"<source><address {attrs}/></source></hostdev></devices></domain>"
    )
    assert [f.address for f in pci_devices(xml)] == [want]


@pytest.mark.parametrize(
    "bad",
    [
        "bus='08'",  # not octal
        "bus='0x'",
        "bus='-1'",
        "bus='0x100'",  # above virPCIDeviceAddressIsValid's 0xff
        "slot='0x20'",
        "function='8'",
        "bus='3 '",  # trailing junk: strtoul stops early, libvirt refuses
        "bus='three'",
    ],
)
def test_one_malformed_element_never_drops_the_rest(bad: str) -> None:
    xml = (
        "<domain><name>web</name><devices>"
        "<hostdev mode='subsystem' type='pci'>"
        "<source><address domain='0' bus='0x01' slot='0x10' function='0'/></source></hostdev>"
        f"<hostdev mode='subsystem' type='pci'><source><address {bad}/></source></hostdev>"
        "<interface type='hostdev'><source><address type='pci' bus='1' slot='0x10' function='2'/>"
        "</source></interface>"
        "</devices></domain>"
    )
    warned: list[str] = []
    found = [f.address for f in pci_devices(xml, warned.append)]
    assert found == ["0000:01:10.0", "0000:01:10.2"]
    assert len(warned) == 1 and "domain web" in warned[0] and "hostdev" in warned[0]


def test_hostdev_without_source_address_is_not_a_pci_holding() -> None:
    xml = (
        "<domain><name>d</name><devices><hostdev mode='subsystem' type='pci'>"
        "<source/></hostdev></devices></domain>"
    )
    assert list(pci_devices(xml)) == []
