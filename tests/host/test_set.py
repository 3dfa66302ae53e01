"""`vfctl set` on simulated hosts: apply, read back, idempotence, validation, --mac auto, and
drivers that refuse or silently ignore a setting (with the earlier settings rolled back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from simcli import SimHost

from vfctl import sim
from vfctl.sim import netdevs
from vfctl.sim.catalog import DRIVERS

PF = "enp1s0"  # minimal preset: one 82576 port, igb, link up at 1 Gb/s


def _full_ops(st: dict[str, Any]) -> None:
    """Give the PF driver every ndo_set_vf_* (as mlx5 has): 802.1ad, min rate, link state."""
    st.setdefault("driver_specs", {})["igb"] = {**DRIVERS["igb"], "vf_ops": "generic"}


TEMPLATES: dict[str, tuple[str, Callable[[SimHost], None]]] = {
    "igb": ("minimal", lambda h: None),
    "full": ("minimal", lambda h: h.edit_state(_full_ops)),
}


@pytest.fixture
def fresh(new_host: Callable[..., SimHost]) -> Callable[[str], SimHost]:
    def make(name: str = "igb") -> SimHost:
        preset, prep = TEMPLATES[name]

        def prepare(h: SimHost) -> None:
            prep(h)
            assert h("enable", PF, "2").code == 0

        return new_host(f"set-{name}", preset, prepare)

    return make


def vf(h: SimHost, index: int = 0, pf: str = PF) -> dict[str, Any]:
    out: dict[str, Any] = h("show", pf, "--json").json()["vfs"][index]
    return out


# ---------------------------------------------------------------- apply and read back

SETTINGS = [
    pytest.param("igb", ("--mac", "02:11:22:33:44:55"), {"mac": "02:11:22:33:44:55"}, id="mac"),
    pytest.param("igb", ("--mac", "02-AA-bb-CC-dd-EE"), {"mac": "02:aa:bb:cc:dd:ee"},
                 id="mac-dashes-upper"),
    pytest.param("igb", ("--vlan", "100"), {"vlan": 100, "qos": 0, "vlan_proto": "802.1Q"},
                 id="vlan"),
    pytest.param("igb", ("--vlan", "100", "--qos", "5"), {"vlan": 100, "qos": 5}, id="vlan-qos"),
    pytest.param("igb", ("--trust", "on"), {"trust": True}, id="trust"),
    pytest.param("igb", ("--spoofchk", "off"), {"spoofchk": False}, id="spoofchk"),
    pytest.param("igb", ("--max-tx-rate", "300"), {"max_tx_rate": 300, "min_tx_rate": 0},
                 id="max-rate"),
    pytest.param("full", ("--vlan", "20", "--vlan-proto", "802.1ad"),
                 {"vlan": 20, "vlan_proto": "802.1ad"}, id="802.1ad"),
    pytest.param("full", ("--link-state", "disable"), {"link_state": "disable"},
                 id="link-state"),
    pytest.param("full", ("--min-tx-rate", "100", "--max-tx-rate", "400"),
                 {"min_tx_rate": 100, "max_tx_rate": 400}, id="min-max-rate"),
    pytest.param("full", ("--query-rss", "on"), {"query_rss": True}, id="query-rss"),
    pytest.param("igb", ("--mac", "02:00:00:00:00:09", "--vlan", "7", "--trust", "on",
                         "--spoofchk", "off"),
                 {"mac": "02:00:00:00:00:09", "vlan": 7, "trust": True, "spoofchk": False},
                 id="several"),
]  # fmt: skip


@pytest.mark.parametrize(("tpl", "args", "want"), SETTINGS)
def test_setting_applied_read_back_and_idempotent(
    fresh: Callable[[str], SimHost], tpl: str, args: tuple[str, ...], want: dict[str, Any]
) -> None:
    h = fresh(tpl)
    other_before = vf(h, 1)
    r = h("set", PF, "vf0", *args, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["changed"] is True and doc["error"] is None and doc["rolled_back"] == []
    assert all(
        a["op"] == "netlink.vf" and a["target"].startswith(f"{PF} vf 0 ") for a in doc["actions"]
    )
    got = vf(h, 0)
    assert {k: got[k] for k in want} == want
    assert vf(h, 1) == other_before  # the other VF is untouched
    log = h.writes()
    again = h("set", PF, "0", *args, "--json")
    assert again.code == 0, again.err
    assert again.json() == {
        "changed": False, "actions": [], "rolled_back": [], "warnings": [], "error": None,
    }  # fmt: skip
    assert h.writes() == log  # not one netlink write the second time


def test_check_changes_nothing(fresh: Callable[[str], SimHost]) -> None:
    h = fresh()
    log, before = h.writes(), vf(h)
    doc = h("set", PF, "vf0", "--vlan", "9", "--check", "--json").json()
    assert doc["changed"] is True and [a["target"] for a in doc["actions"]] == [f"{PF} vf 0 vlan"]
    assert h.writes() == log and vf(h) == before


def test_vf_by_pci_address(fresh: Callable[[str], SimHost]) -> None:
    h = fresh()
    addr = vf(h, 1)["address"]
    assert h("set", "0000:01:00.0", addr, "--trust", "on").code == 0
    assert vf(h, 1)["trust"] is True and vf(h, 0)["trust"] is False


# ---------------------------------------------------------------- validation before any write

INVALID = [
    pytest.param(("--mac", "03:00:00:00:00:01"), 2, "multicast", id="mac-multicast"),
    pytest.param(("--mac", "ff:ff:ff:ff:ff:ff"), 2, "multicast", id="mac-broadcast"),
    pytest.param(("--mac", "00:00:00:00:00:00"), 2, "non-zero", id="mac-zero"),
    pytest.param(("--mac", "not-a-mac"), 2, "invalid MAC", id="mac-garbage"),
    pytest.param(("--mac", "02:00:00:00:00"), 2, "invalid MAC", id="mac-short"),
    pytest.param(("--mac", "02:00:00:00:00:0g"), 2, "invalid MAC", id="mac-hex"),
    pytest.param(("--vlan", "4095"), 2, "0-4094", id="vlan-4095"),
    pytest.param(("--vlan", "-1"), 2, "0-4094", id="vlan-negative"),
    pytest.param(("--vlan", "1", "--qos", "8"), 2, "qos 8", id="qos-8"),
    pytest.param(("--vlan-proto", "802.1ad"), 2, "802.1ad needs", id="qinq-without-vlan"),
    pytest.param(("--vlan", "0", "--vlan-proto", "802.1ad"), 2, "802.1ad needs", id="qinq-vlan0"),
    pytest.param(("--vlan", "5", "--vlan-proto", "802.1x"), 2, "VLAN protocol", id="proto"),
    pytest.param(("--max-tx-rate", "-1"), 2, "max-tx-rate -1", id="max-negative"),
    pytest.param(("--min-tx-rate", "-5"), 2, "min-tx-rate -5", id="min-negative"),
    pytest.param(("--min-tx-rate", "500", "--max-tx-rate", "100"), 2, "min-tx-rate 500 >",
                 id="min-above-max"),
    pytest.param(("--link-state", "up"), 2, "link state", id="link-state"),
    pytest.param(("--trust", "maybe"), 2, "--trust", id="trust-word"),
    pytest.param(("--spoofchk", "2"), 2, "--spoofchk", id="spoofchk-word"),
    # one valid setting does not get written when another is invalid
    pytest.param(("--mac", "02:00:00:00:00:01", "--vlan", "4095"), 2, "0-4094", id="mixed"),
    pytest.param((), 2, "nothing to set", id="nothing"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "words"), INVALID)
def test_invalid_values_refused_before_any_write(
    fresh: Callable[[str], SimHost], args: tuple[str, ...], code: int, words: str
) -> None:
    h = fresh()
    log = h.writes()
    r = h("set", PF, "vf0", *args, "--json")
    assert r.code == code, r.err
    assert words in r.err and len(r.err.strip().splitlines()) == 1
    assert r.json()["error"]["kind"] == "invalid" and r.json()["changed"] is False
    assert h.writes() == log


@pytest.mark.parametrize("sel", ["vf2", "7", "vf99", "0000:01:10.4"])
def test_vf_out_of_range_is_not_found(fresh: Callable[[str], SimHost], sel: str) -> None:
    h = fresh()  # VFs 0 and 1 exist; 01:10.4 would be VF 2
    log = h.writes()
    r = h("set", PF, sel, "--trust", "on", "--json")
    assert r.code == 3, r.err
    assert r.json()["error"]["kind"] == "not-found" and h.writes() == log


def test_unknown_pf_is_not_found(fresh: Callable[[str], SimHost]) -> None:
    h = fresh()
    r = h("set", "eth9", "vf0", "--trust", "on")
    assert r.code == 3 and "eth9" in r.err


# ---------------------------------------------------------------- --mac auto


def _is_local_unicast(mac: str) -> bool:
    first = int(mac.split(":")[0], 16)
    return first & 0x01 == 0 and first & 0x02 == 2


def test_mac_auto_stable_across_recreation_and_distinct(
    make_host: Callable[[str], SimHost],
) -> None:
    """Re-created VFs come back with a zero MAC; `--mac auto` gives each the same MAC again,
    different per VF and per PF."""
    h = make_host("default")
    pfs = ("enp2s0f0", "enp2s0f1")  # the two igb ports of the 82576
    for pf in pfs:
        assert h("enable", pf, "2").code == 0

    def auto_all() -> dict[tuple[str, int], str]:
        out = {}
        for pf in pfs:
            for i in (0, 1):
                r = h("set", pf, f"vf{i}", "--mac", "auto", "--json")
                assert r.code == 0, r.err
                out[(pf, i)] = vf(h, i, pf)["mac"]
        return out

    first = auto_all()
    assert len(set(first.values())) == 4
    assert all(_is_local_unicast(m) for m in first.values())
    for pf in pfs:  # re-creation: the kernel hands out zero MACs, the admin's are gone
        assert h("disable", pf).code == 0 and h("enable", pf, "2").code == 0
        assert {vf(h, i, pf)["mac"] for i in (0, 1)} == {"00:00:00:00:00:00"}
    assert auto_all() == first
    log = h.writes()
    assert h("set", pfs[0], "vf1", "--mac", "auto", "--json").json()["changed"] is False
    assert h.writes() == log


def test_mac_auto_depends_on_the_host(fresh: Callable[[str], SimHost]) -> None:
    a, b = fresh(), fresh()
    (b.root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    for h in (a, b):
        assert h("set", PF, "vf0", "--mac", "auto").code == 0
    assert vf(a)["mac"] != vf(b)["mac"]


# ---------------------------------------------------------------- the driver says no


def _assert_refused(h: SimHost, r: Any, before: dict[str, Any], *words: str) -> dict[str, Any]:
    assert r.code == 5, r.err
    doc: dict[str, Any] = r.json()
    assert doc["error"]["kind"] == "host" and doc["changed"] is False
    line = r.err.strip()
    assert len(line.splitlines()) == 1 and "rolled back:" in line
    for w in words:
        assert w in line, (w, line)
    assert vf(h) == before
    return doc


@pytest.mark.parametrize(
    ("args", "group", "words"),
    [
        pytest.param(("--min-tx-rate", "10"), "rate", ("min-tx-rate", "EINVAL"), id="min-rate"),
        pytest.param(
            ("--link-state", "enable"),
            "link_state",
            ("link-state", "not supported"),
            id="link-state",
        ),
        pytest.param(
            ("--query-rss", "on"), "query_rss", ("query-rss", "not supported"), id="query-rss"
        ),
        pytest.param(
            ("--vlan", "5", "--vlan-proto", "802.1ad"), "vlan", ("VLAN protocol",), id="qinq"
        ),
    ],
)
def test_igb_refuses_and_earlier_settings_roll_back(
    fresh: Callable[[str], SimHost], args: tuple[str, ...], group: str, words: tuple[str, ...]
) -> None:
    h = fresh()
    before = vf(h)
    r = h("set", PF, "vf0", "--mac", "02:00:00:00:00:42", "--trust", "on", *args, "--json")
    doc = _assert_refused(h, r, before, "driver igb", *words)
    # everything up to the refused setting, in reverse; the MAC goes first, so it is undone
    k = len(doc["rolled_back"])
    assert doc["rolled_back"] == list(reversed(doc["actions"][:k]))
    assert doc["rolled_back"][-1]["target"] == f"{PF} vf 0 mac"
    assert doc["rolled_back"][0]["target"] == f"{PF} vf 0 {group}"


def test_max_rate_needs_pf_carrier(fresh: Callable[[str], SimHost]) -> None:
    h = fresh()
    sim.set_link(h.root, PF, up=True, carrier=False)  # cable pulled
    before = vf(h)
    r = h("set", PF, "vf0", "--vlan", "12", "--max-tx-rate", "100", "--json")
    doc = _assert_refused(h, r, before, "max-tx-rate", "driver igb")
    assert [a["target"] for a in doc["rolled_back"]][-1] == f"{PF} vf 0 vlan"
    sim.set_link(h.root, PF, up=True, carrier=True)
    assert h("set", PF, "vf0", "--vlan", "12", "--max-tx-rate", "100").code == 0


def test_netlink_error_mid_way_rolls_back(fresh: Callable[[str], SimHost]) -> None:
    h = fresh()
    before = vf(h)
    h.faults([{"path": f"netlink/{PF}/vf0/spoofchk", "errno": "EIO"}])
    r = h("set", PF, "vf0", "--mac", "02:00:00:00:00:43", "--vlan", "3", "--spoofchk", "off",
          "--json")  # fmt: skip
    doc = _assert_refused(h, r, before, "spoof-check", "driver igb")
    assert {a["target"].rsplit(" ", 1)[1] for a in doc["rolled_back"]} >= {"mac", "vlan"}


def test_setting_accepted_but_ignored_is_an_error(
    fresh: Callable[[str], SimHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver that returns success for trust and keeps reporting the old value: vfctl reads
    every setting back, so this is an error, and the MAC set before it is rolled back."""
    real = netdevs._set_one

    def ignore_trust(st: Any, dev: Any, vfi: int, group: str, vals: Any, *rest: Any) -> None:
        if group != "trust":
            real(st, dev, vfi, group, vals, *rest)

    monkeypatch.setattr(netdevs, "_set_one", ignore_trust)
    h = fresh()
    before = vf(h)
    r = h("set", PF, "vf0", "--mac", "02:00:00:00:00:44", "--trust", "on", "--json")
    doc = _assert_refused(h, r, before, "accepted trust=True but reports False", "driver igb")
    assert [a["target"] for a in doc["rolled_back"]][-1] == f"{PF} vf 0 mac"
    assert any("netlink/enp1s0/vf0/trust" in w and w.endswith("\tok") for w in h.writes())
