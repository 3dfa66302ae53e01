"""The VF-settings table is the one description: every other one derives from it and agrees.

Round trips go through real bytes: pyroute2 encodes the RTM_SETLINK message the way
``netlink.set_vf`` sends it (``nlcheck.encode``), and the raw reader ``rtnl`` decodes its
IFLA_VF_INFO the way it decodes the kernel's dump (the kernel's ifla_vf_* structs are the
same both ways: include/uapi/linux/if_link.h).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from vfctl import plan_host, pools, profile, vfattrs, vfsettings
from vfctl.errors import UsageError
from vfctl.host import netlink, nlcheck, rtnl
from vfctl.model import VFSettings

SAMPLES: dict[str, list[Any]] = {
    "mac": ["02:00:00:00:00:01", "0e:ab:cd:ef:01:23"],
    "vlan": [0, 1, 4094],
    "qos": [0, 7],
    "vlan_proto": ["802.1Q"],
    "spoofchk": [True, False],
    "trust": [True, False],
    "link_state": ["auto", "enable", "disable"],
    "min_tx_rate": [0, 100],
    "max_tx_rate": [0, 10000],
    "query_rss": [True, False],
}


def _vf_info(data: bytes) -> bytes:
    top = dict(nlcheck._tlvs(data[32:]))  # nlmsghdr + ifinfomsg
    return dict(nlcheck._tlvs(top[nlcheck.IFLA_VFINFO_LIST]))[nlcheck.IFLA_VF_INFO]


def test_every_setting_has_a_row_and_the_dataclasses_follow_it() -> None:
    assert tuple(f.name for f in dataclasses.fields(VFSettings)) == vfattrs.NAMES
    assert tuple(f.name for f in dataclasses.fields(vfsettings.Desired)) == vfattrs.NAMES
    assert set(SAMPLES) == set(vfattrs.NAMES)
    assert {a.group for a in vfattrs.ATTRS} == {g.name for g in vfattrs.GROUPS}
    for name in ("yaml_key", "option", "label"):
        values = [getattr(a, name) for a in vfattrs.ATTRS]
        assert len(set(values)) == len(values), name


@pytest.mark.parametrize("name", [a.name for a in vfattrs.ATTRS])
def test_each_row_round_trips_through_the_kernels_bytes(name: str) -> None:
    group = vfattrs.GROUP_OF[name]
    for value in SAMPLES[name]:
        settings = {n: vfattrs.DEFAULTS[n] for n in vfattrs.MEMBERS[group]}
        settings[name] = value
        vf, got = rtnl.vf_settings(
            _vf_info(nlcheck.encode(5, {"mac": "02:00:00:00:00:09", **settings}))
        )
        assert vf == 5
        for n, v in settings.items():
            assert vfattrs.same(n, getattr(got, n), v), (n, getattr(got, n), v)


def test_8021ad_goes_as_a_vlan_list_and_reads_back_from_one() -> None:
    spec = netlink.vf_spec(2, {"vlan": 10, "qos": 3, "vlan_proto": "802.1ad"})
    assert spec == {"vf": 2, "vlan": [{"vlan": 10, "qos": 3, "proto": 0x88A8}]}
    vlan = vfattrs.GROUP["vlan"].nla_type
    u32 = lambda *v: b"".join(x.to_bytes(4, "little") for x in v)  # noqa: E731
    nla = lambda t, p: (4 + len(p)).to_bytes(2, "little") + t.to_bytes(2, "little") + p  # noqa: E731
    info = u32(2, 10, 3) + (0x88A8).to_bytes(2, "big") + b"\0\0"
    raw = (
        nla(vfattrs.GROUP["mac"].nla_type, u32(2) + bytes(32))
        + nla(vlan, u32(2, 10, 3))
        + nla(vfattrs.IFLA_VF_VLAN_LIST, nla(vfattrs.IFLA_VF_VLAN_INFO, info))
    )
    got = rtnl.vf_settings(raw)
    assert got is not None
    assert (got[1].vlan, got[1].qos, got[1].vlan_proto) == (10, 3, "802.1ad")


def test_a_group_is_encoded_whole_and_in_one_attribute() -> None:
    assert netlink.vf_spec(1, {"min_tx_rate": 5}) == {
        "vf": 1,
        "rate": {"min_tx_rate": 5, "max_tx_rate": 0},
    }
    assert netlink.vf_spec(1, {"qos": 2}) == {"vf": 1, "vlan": {"vlan": 0, "qos": 2}}
    # message order: the table's (mac, vlan, spoofchk, trust, link_state, rate, query_rss)
    full = netlink.vf_spec(0, {n: vfattrs.DEFAULTS[n] for n in reversed(vfattrs.NAMES)})
    assert list(full) == ["vf", "mac", "vlan", "spoofchk", "trust", "link_state", "rate",
                          "rss_query_en"]  # fmt: skip


def test_unreported_values_decode_as_none() -> None:
    got = vfattrs.decode({"spoofchk": (vfattrs.UNSET,), "link_state": (9,)}, None, False)
    assert got == VFSettings()


def test_profile_schema_keys_come_from_the_table() -> None:
    vf_entry = profile.SCHEMA.field("pfs")
    assert vf_entry is not None and vf_entry.items is not None
    vfs = vf_entry.items.field("vfs")
    assert vfs is not None and vfs.items is not None
    keys = [k for k, _ in vfs.items.fields if k not in ("id", "driver", "attach")]
    assert keys == [a.yaml_key for a in vfattrs.ATTRS]
    assert tuple((a.yaml_key, a.name) for a in vfattrs.ATTRS) == profile.SETTING_KEYS
    for a in vfattrs.ATTRS:
        t = vfs.items.field(a.yaml_key)
        assert t is not None and t.doc == a.doc
        if a.kind == "int":
            assert (t.minimum, t.maximum) == (a.lo, a.hi)
        if a.kind == "enum":
            assert t.enum == a.choices


def test_a_vf_at_the_defaults_needs_nothing_back() -> None:
    # a VF at the kernel's defaults needs nothing back after a re-create
    from vfctl.model import PF, VF

    vf = VF(0, "0000:01:10.0", None, None, None, None, "8086", "10ca",
            settings=VFSettings(**vfattrs.DEFAULTS))  # fmt: skip
    pf = PF("0000:01:00.0", "eth0", ("eth0",), "igb", "8086", "10c9", "020000", None, 8, 8,
            None, 1, 128, 2, "10ca", True, None, None, None, False, (vf,))  # fmt: skip
    assert plan_host.vf_state(pf)[0]["settings"] == {}


def test_pool_keys_are_the_cli_options() -> None:
    for f in dataclasses.fields(pools.PoolSettings):
        assert pools._KEYS[f.name] == vfattrs.ATTR[f.name].option.removeprefix("--")


def test_cli_set_options_come_from_the_table() -> None:
    import inspect

    from vfctl import cli

    cmd = next(c for c in cli.app.registered_commands if c.name == "set")
    assert cmd.callback is not None
    params = inspect.signature(cmd.callback).parameters
    for a in vfattrs.ATTRS:
        opt = params[a.name].default
        assert (opt.default, opt.param_decls, opt.help) == (None, (a.option,), a.help)


def test_what_a_recreated_vf_needs_back() -> None:
    assert vfattrs.not_default(VFSettings(vlan=0, qos=0, vlan_proto="802.1ad")) == {}
    assert vfattrs.not_default(VFSettings(vlan=5, vlan_proto="802.1ad", trust=None)) == {
        "vlan": 5,
        "vlan_proto": "802.1ad",
    }
    assert vfattrs.not_default(VFSettings(mac="02:00:00:00:00:01", spoofchk=False)) == {
        "mac": "02:00:00:00:00:01",
        "spoofchk": False,
    }


@pytest.mark.parametrize("a", [a for a in vfattrs.ATTRS if a.kind == "int"], ids=lambda a: a.name)
def test_validate_accepts_exactly_the_schemas_range(a: vfattrs.Attr) -> None:
    def ok(v: int) -> bool:
        try:
            vfsettings.validate(vfsettings.Desired(**{a.name: v}))
        except UsageError:
            return False
        return True

    assert a.lo is not None
    assert ok(a.lo) and not ok(a.lo - 1)
    if a.hi is not None:
        assert ok(a.hi) and not ok(a.hi + 1)


def test_pool_schema_keys_are_the_pool_settings() -> None:
    from vfctl import profile_schema

    keys = {vfattrs.KEY_OF[f.name] for f in dataclasses.fields(pools.PoolSettings)}
    assert set(profile_schema._POOL_KEYS) == keys - {"mac-address"}  # mac: only "auto"
