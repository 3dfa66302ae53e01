"""hostpciN / mapping property strings: parse <-> format round trips and the holder rules."""

from __future__ import annotations

import pytest
from fakepve import Schema
from hypothesis import given
from hypothesis import strategies as st

from vfctl.backends.pve_hostpci import (
    HostPci,
    MapEntry,
    PropertyStringError,
    expand_hostpci_id,
    format_hostpci,
    format_map_entry,
    parse_hostpci,
    parse_map_entry,
    vendor_device,
)
from vfctl.backends.pve_mapping import held_addresses, parse_mappings, slot_uses

hexd = st.sampled_from("0123456789abcdef")
full_id = st.builds(
    lambda d, b, s, f: f"{d}:{b}:{s}.{f}",
    st.text(hexd, min_size=4, max_size=4),
    st.text(hexd, min_size=2, max_size=2),
    st.text(hexd, min_size=2, max_size=2),
    st.sampled_from("01234567"),
)
short_id = st.builds(
    lambda b, s: f"{b}:{s}",
    st.text(hexd, min_size=2, max_size=2),
    st.text(hexd, min_size=2, max_size=2),
)
configid = st.from_regex(r"[a-z][a-z0-9_-]{1,20}", fullmatch=True)
opt_bool = st.none() | st.booleans()
extra = st.lists(
    st.sampled_from(
        [("romfile", "x.rom"), ("vendor-id", "0x8086"), ("mdev", "nvidia-63"), ("legacy-igd", "1")]
    ),
    unique_by=lambda kv: kv[0],
    max_size=3,
).map(tuple)
hostpci = st.one_of(
    st.builds(
        HostPci,
        host=st.lists(full_id | short_id, min_size=1, max_size=3).map(tuple),
        pcie=opt_bool,
        rombar=opt_bool,
        x_vga=opt_bool,
        driver=st.none() | st.sampled_from(["vfio", "keep"]),
        extra=extra,
    ),
    st.builds(
        HostPci,
        mapping=configid,
        pcie=opt_bool,
        rombar=opt_bool,
        x_vga=opt_bool,
        driver=st.none() | st.sampled_from(["vfio", "keep"]),
        extra=extra,
    ),
)
SCHEMA = Schema()
HOSTPCI_PROPS = SCHEMA.formats["pve-qm-hostpci"]["properties"]


@given(hostpci)
def test_round_trip_and_real_schema_accepts(h: HostPci) -> None:
    text = format_hostpci(h)
    assert parse_hostpci(text) == h
    parsed = SCHEMA.property_string(HOSTPCI_PROPS, text)  # what PVE's parser makes of it
    assert ("host" in parsed) != ("mapping" in parsed)
    if h.pcie is not None:
        assert parsed["pcie"] == int(h.pcie)


@pytest.mark.parametrize(
    "text, want",
    [
        ("0000:03:10.2", HostPci(host=("0000:03:10.2",))),
        (
            "03:10.2;03:10.4,pcie=on,rombar=No",
            HostPci(host=("03:10.2", "03:10.4"), pcie=True, rombar=False),
        ),
        (",mapping=vf-eth2-3,,driver=keep,", HostPci(mapping="vf-eth2-3", driver="keep")),
        (
            "host=0000:03:10,x-vga=1,romfile=a.rom",
            HostPci(host=("0000:03:10",), x_vga=True, extra=(("romfile", "a.rom"),)),
        ),
    ],
)
def test_parse(text: str, want: HostPci) -> None:
    assert parse_hostpci(text) == want
    assert parse_hostpci(format_hostpci(parse_hostpci(text))) == want


@pytest.mark.parametrize(
    "text",
    [
        "0000:03:10.2,0000:03:10.4",  # two default-key parts
        "host=0000:03:10.2,host=0000:03:10.4",
        "mapping=m1,pcie=1,pcie=0",
        "mapping=m1,colour=red",
        "0000:03:1A.2",  # uppercase: PVE's pattern only allows lowercase
        "mapping=m1,pcie=maybe",
        "mapping=9m",
        "mapping=m1,driver=nouveau",
    ],
)
def test_parse_refuses_what_pve_refuses(text: str) -> None:
    with pytest.raises(PropertyStringError):
        parse_hostpci(text)


def test_function_less_id_means_the_functions_that_exist() -> None:
    """qemu-server parse_hostpci expands every id through SysFSTools::lspci: no phantom .0-.7."""
    present = {"0000:03:10.0", "0000:03:10.2", "0000:03:11.0", "0001:03:10.4"}
    assert expand_hostpci_id("03:10", present) == ("0000:03:10.0", "0000:03:10.2")
    assert expand_hostpci_id("0001:03:10", present) == ("0001:03:10.4",)
    assert expand_hostpci_id("0001:03:10.4", present) == ("0001:03:10.4",)
    assert expand_hostpci_id("f0:43", present) == ()


@pytest.mark.parametrize(
    "text",
    [
        "host=0000:03:10.2,mapping=m1",  # qemu-server: "Cannot set both 'host' and 'mapping'"
        "pcie=1",  # neither host nor mapping
        "mapping=m1,romfile=a;b",  # romfile pattern [^,;]+
        "mapping=m1,vendor-id=1234",  # hex ids need 0x
        "mapping=m1,sub-device-id=0x12345",
        "mapping=m1,mdev=a/b",
        "0000:03:10.2\n",
        "mapping=m1\n",
    ],
)
def test_parse_refuses_what_qemu_server_refuses(text: str) -> None:
    with pytest.raises(PropertyStringError):
        parse_hostpci(text)
    with pytest.raises(PropertyStringError):
        format_hostpci(HostPci(mapping="m1", extra=(("romfile", "a;b"),)))


@pytest.mark.parametrize(
    "text",
    [
        "node=pve1,path=01:10.2,id=8086:10ed",  # no domain
        "node=pve1,path=0000:01:10.2,id=0x8086:0x10ed",
        "node=pve_1,path=0000:01:10.2,id=8086:10ed",  # pve-node has no '_'
        "node=pve1,path=0000:01:10.2,id=8086:10ed,subsystem-id=8086",
        "node=pve1,path=0000:01:10.2,id=8086:10ed,iommugroup=x",
        "node=pve1,path=0000:01:10.2,id=8086:10ed\n",
        "node=pve1,path=0000:01:10.2\n,id=8086:10ed",
    ],
)
def test_map_entry_refuses_what_pve_refuses(text: str) -> None:
    with pytest.raises(PropertyStringError):
        parse_map_entry(text)


def test_formatter_never_produces_what_pve_rejects() -> None:
    """Issue 11 item 9: a crafted sysfs value must not smuggle keys into a mapping entry."""
    ok = MapEntry(node="pve1", path=("0000:01:10.2",), id="8086:10ed")
    for bad in (
        {"subsystem_id": "8086:0000,description=pwned"},
        {"id": "8086:10ed,x=y"},
        {"node": "pve_1"},
        {"path": ("01:10.2",)},
        {"description": "a,b"},
    ):
        with pytest.raises(PropertyStringError):
            format_map_entry(MapEntry(**{**ok.__dict__, **bad}))
    assert vendor_device("0x8086", "0x10ed") == "8086:10ed"
    assert vendor_device("0x8086,description=x", "0x10ed") is None
    assert vendor_device("0x86", "0x10ed") is None


@given(
    st.builds(
        MapEntry,
        node=st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
        path=st.lists(full_id, min_size=1, max_size=2).map(tuple),
        id=st.just("8086:10ed"),
        iommugroup=st.none() | st.integers(0, 500),
        subsystem_id=st.none() | st.just("8086:0000"),
    )
)
def test_map_entry_round_trip(e: MapEntry) -> None:
    text = format_map_entry(e)
    assert parse_map_entry(text) == e
    item = SCHEMA.paths["/cluster/mapping/pci"]["methods"]["POST"]["parameters"]["properties"]
    SCHEMA.check(item["map"], [text], in_propstring=False)  # the real schema accepts it


def test_held_addresses_lists_functionless_and_mappings() -> None:
    mappings = parse_mappings(
        [
            {
                "id": "m-a",
                "map": [
                    "node=pve1,path=0000:03:11.0,id=8086:10ed",
                    "node=pve2,path=0000:81:00.1,id=8086:10ed",
                ],
            },
            {"id": "m-b", "map": ["node=pve2,path=0000:03:11.2,id=8086:10ed"]},
            {"id": "broken", "map": ["garbage"]},
            {
                "id": "pool",
                "map": [
                    "node=pve1,path=0000:03:12.0,id=8086:10ed",
                    "node=pve1,path=0000:03:12.2,id=8086:10ed",
                ],
            },
        ]
    )
    cfg = {
        "hostpci0": "0000:03:10.2;03:10.4,pcie=1",
        "hostpci3": "host=04:00",
        "hostpci5": "mapping=m-a",
        "hostpci6": "mapping=m-b",  # no entry for pve1: holds nothing here
        "hostpci7": "mapping=broken",
        "hostpci8": "mapping=pool",  # a pool: PVE picks at start, nothing held for sure
        "hostpci9": "this is not valid,,,=",
        "hostpci10": "mapping=m-a,mdev=i915-GVTg_V5_4",  # an mdev holds no function
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
    }
    present = {"0000:04:00.0", "0000:04:00.1", "0000:03:10.2", "0000:03:10.4"}
    warnings: list[str] = []
    uses = slot_uses(cfg, mappings, "pve1", present, warnings.append, "VM 101")
    held = held_addresses(uses)
    assert held["0000:03:10.2"] == held["0000:03:10.4"] == "hostpci0"
    assert "0000:03:10.6" not in held
    assert [a for a, s in held.items() if s == "hostpci3"] == ["0000:04:00.0", "0000:04:00.1"]
    assert held["0000:03:11.0"] == "hostpci5"
    assert "0000:03:11.2" not in held and "0000:81:00.1" not in held
    assert "0000:03:12.0" not in held and "0000:03:12.2" not in held
    pool = next(u for u in uses if u.slot == "hostpci8")
    assert pool.alternatives == (("0000:03:12.0",), ("0000:03:12.2",))
    assert [w for w in warnings if "hostpci9" in w and "VM 101" in w]
    pve2 = held_addresses(slot_uses(cfg, mappings, "pve2", present))
    assert pve2["0000:81:00.1"] == "hostpci5"
