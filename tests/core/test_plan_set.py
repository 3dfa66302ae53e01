"""``vfsettings.plan_set`` called directly: a pure function of (PF, VF as discovered, Desired).

No host, no netlink: each test builds the model facts it needs and reads the planned
``netlink.vf`` actions (their params are what the journal stores and replays, so they are
asserted exactly).
"""

from __future__ import annotations

from typing import Any

import pytest

from vfctl import vfsettings
from vfctl.errors import HostError, UsageError
from vfctl.model import PF, VF, VFSettings
from vfctl.plan import Action
from vfctl.vfsettings import Desired, plan_set, validate

CUR = VFSettings(
    mac="02:00:00:00:00:01",
    vlan=0,
    qos=0,
    vlan_proto="802.1Q",
    spoofchk=True,
    trust=False,
    link_state="auto",
    min_tx_rate=0,
    max_tx_rate=0,
    query_rss=False,
)


def vf(settings: VFSettings = CUR, index: int = 3) -> VF:
    return VF(index, f"0000:01:10.{index}", "igbvf", None, None, None, "8086", "10ca",
              settings=settings)  # fmt: skip


def pf(netdev: str | None = "eth2") -> PF:
    return PF("0000:01:00.0", netdev, (netdev,) if netdev else (), "igb", "8086", "10c9",
              "020000", None, 8, 8, None, 4, 128, 2, "10ca", True, None, None, None, False)  # fmt: skip


def plan(d: Desired, cur: VFSettings = CUR, **kw: Any) -> list[Action]:
    return plan_set(pf(), vf(cur), validate(d), **kw)


def only(actions: list[Action]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(new settings, undo's settings) of the one planned write."""
    assert len(actions) == 1, actions
    a = actions[0]
    assert a.undo is not None
    return a.params["settings"], a.undo.params["settings"]


def test_nothing_to_do_when_every_setting_already_holds() -> None:
    d = Desired(**CUR.to_json())
    assert plan(d) == []


def test_mac_compares_ignoring_case() -> None:
    assert plan(Desired(mac="02:00:00:00:00:01"), VFSettings(mac="02:00:00:00:00:01".upper())) == []
    assert plan(Desired(mac="02:00:00:00:00:0A")) != []  # validate lowers it; still a change


def test_mac_change_is_one_write_with_the_journal_params_and_its_undo() -> None:
    (a,) = plan(Desired(mac="02:00:00:00:00:0b"))
    assert a.op == "netlink.vf"
    assert a.target == "eth2 vf 3 mac"
    assert a.detail == "mac=02:00:00:00:00:01 -> mac=02:00:00:00:00:0b"
    base = {"pf": "eth2", "pf_address": "0000:01:00.0", "driver": "igb", "vf": 3}
    assert a.params == {**base, "settings": {"mac": "02:00:00:00:00:0b"}}
    assert a.undo is not None and a.undo.op == "netlink.vf"
    assert a.undo.params == {**base, "settings": {"mac": "02:00:00:00:00:01"}, "undo": True}
    assert a.undo.detail == "mac=02:00:00:00:00:0b -> mac=02:00:00:00:00:01"


@pytest.mark.parametrize(
    ("key", "value", "old"),
    [("spoofchk", False, True), ("trust", True, False), ("link_state", "disable", "auto"),
     ("query_rss", True, False)],
)  # fmt: skip
def test_each_single_setting_is_its_own_write(key: str, value: Any, old: Any) -> None:
    actions = plan(Desired(**{key: value}))
    assert only(actions) == ({key: value}, {key: old})
    assert actions[0].target == f"eth2 vf 3 {key}"


def test_vlan_qos_and_protocol_go_as_one_group_keeping_what_is_not_asked() -> None:
    cur = VFSettings(vlan=10, qos=2, vlan_proto="802.1Q")
    assert only(plan(Desired(vlan=20), cur)) == (
        {"vlan": 20, "qos": 2, "vlan_proto": "802.1Q"},
        {"vlan": 10, "qos": 2, "vlan_proto": "802.1Q"},
    )
    new, _ = only(plan(Desired(qos=5), cur))
    assert new == {"vlan": 10, "qos": 5, "vlan_proto": "802.1Q"}
    new, _ = only(plan(Desired(vlan=10, vlan_proto="802.1AD"), cur))
    assert new == {"vlan": 10, "qos": 2, "vlan_proto": "802.1ad"}


def test_untagging_writes_8021q_back() -> None:
    cur = VFSettings(vlan=10, qos=0, vlan_proto="802.1ad")
    assert only(plan(Desired(vlan=0), cur)) == (
        {"vlan": 0, "qos": 0, "vlan_proto": "802.1Q"},
        {"vlan": 10, "qos": 0, "vlan_proto": "802.1ad"},
    )


def test_rates_go_as_one_pair() -> None:
    cur = VFSettings(min_tx_rate=10, max_tx_rate=1000)
    actions = plan(Desired(max_tx_rate=500), cur)
    assert only(actions) == (
        {"min_tx_rate": 10, "max_tx_rate": 500},
        {"min_tx_rate": 10, "max_tx_rate": 1000},
    )
    assert actions[0].target == "eth2 vf 3 rate"
    assert plan(Desired(min_tx_rate=10), cur) == []


def test_unreported_settings_count_as_defaults_in_groups_but_are_ensured_alone() -> None:
    unknown = VFSettings()  # a VF about to be created, or a driver that reports nothing
    assert plan(Desired(vlan=0, min_tx_rate=0), unknown) == []
    actions = plan(Desired(spoofchk=True), unknown)
    assert only(actions) == ({"spoofchk": True}, {"spoofchk": True})
    assert actions[0].detail == "ensure spoofchk=on"


def test_several_settings_plan_in_a_fixed_order() -> None:
    d = Desired(
        max_tx_rate=100, query_rss=True, link_state="enable", trust=True, spoofchk=False,
        vlan=7, mac="02:00:00:00:00:09",
    )  # fmt: skip
    assert [a.target.split()[-1] for a in plan(d)] == [
        "mac", "vlan", "spoofchk", "trust", "link_state", "query_rss", "rate",
    ]  # fmt: skip


def test_undo_of_each_write_restores_exactly_the_old_values() -> None:
    cur = VFSettings(mac="02:00:00:00:00:01", vlan=5, qos=1, vlan_proto="802.1Q", trust=True,
                     min_tx_rate=0, max_tx_rate=300)  # fmt: skip
    d = Desired(mac="02:00:00:00:00:02", vlan=6, trust=False, max_tx_rate=400)
    for a in plan(d, cur):
        assert a.undo is not None and a.undo.params["undo"] is True
        for k, v in a.undo.params["settings"].items():
            assert getattr(cur, k) == v, k
        assert set(a.undo.params["settings"]) == set(a.params["settings"])


def test_mac_auto_is_derived_from_host_pf_and_vf() -> None:
    (a,) = plan(Desired(mac="auto"), ident="machine-1")
    mac = a.params["settings"]["mac"]
    assert mac == vfsettings.auto_mac("machine-1", "0000:01:00.0", 3)
    assert int(mac[:2], 16) & 3 == 2  # locally administered, unicast
    (b,) = plan(Desired(mac="auto"), ident="machine-2")
    assert b.params["settings"]["mac"] != mac
    assert plan(Desired(mac="auto"), VFSettings(mac=mac.upper()), ident="machine-1") == []
    with pytest.raises(ValueError, match="host identity"):
        plan(Desired(mac="auto"))


def test_invalid_combinations_are_refused_before_planning() -> None:
    with pytest.raises(UsageError, match=r"min-tx-rate 500 > max-tx-rate 100"):
        validate(Desired(min_tx_rate=500, max_tx_rate=100))
    # 802.1ad needs a tag in the same request: the VF's current VLAN is not looked at
    with pytest.raises(UsageError, match=r"802\.1ad needs a non-zero --vlan or --qos"):
        validate(Desired(vlan_proto="802.1ad"))
    with pytest.raises(UsageError, match="invalid VLAN protocol"):
        validate(Desired(vlan_proto="qinq"))
    with pytest.raises(UsageError, match="multicast"):
        validate(Desired(mac="01:00:5e:00:00:01"))
    with pytest.raises(UsageError, match="must be 0 or more"):
        validate(Desired(max_tx_rate=-1))
    # a priority without a VLAN id keeps the VF's VLAN (pools refuse it: tests/core/test_pools)
    new, _ = only(plan(Desired(qos=3), VFSettings(vlan=9, qos=0, vlan_proto="802.1Q")))
    assert new == {"vlan": 9, "qos": 3, "vlan_proto": "802.1Q"}
    # a zero max rate is "unlimited": any min goes with it
    assert validate(Desired(min_tx_rate=500, max_tx_rate=0)).min_tx_rate == 500


def test_validate_normalises_what_it_lets_through() -> None:
    d = validate(Desired(mac=" 02-AB-CD-EF-00-01 ", vlan_proto="802.1Q"))
    assert (d.mac, d.vlan_proto) == ("02:ab:cd:ef:00:01", "802.1Q")
    assert validate(Desired(vlan_proto="802.1q")).vlan_proto == "802.1Q"


def test_a_pf_without_netdev_cannot_take_vf_settings() -> None:
    with pytest.raises(HostError, match="no netdev"):
        plan_set(pf(None), vf(), Desired(trust=True))


def test_the_planned_op_is_found_where_the_engine_looks_for_it() -> None:
    """Journals name ``netlink.vf``: the engine imports OP_MODULES['netlink'] to replay it."""
    import importlib

    from vfctl import plan as engine

    importlib.import_module(engine.OP_MODULES["netlink"])
    assert "netlink.vf" in engine.OPS
