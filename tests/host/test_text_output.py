"""Text and JSON say the same thing: defects a new user found by reading the output (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from simcli import SimHost, pf_by_driver

from vfctl import pciids
from vfctl.vfsettings import _change

PROFILES = Path(__file__).parents[2] / "profiles"


def _pci_ids_name(pf: dict[str, str]) -> str:
    name = pciids.name(pf["vendor_id"], pf["device_id"])
    if name is None:  # pciutils ships pci.ids (deps/apt-pci.txt); without it there is no name
        pytest.fail("no pci.ids on this machine: install pciutils")
    return name


def test_list_and_show_json_carry_the_name_the_table_shows(host: SimHost) -> None:
    doc = host("list", "--json").json()
    table = host("list").out
    for pf in doc["pfs"]:
        name = _pci_ids_name(pf)
        assert pf["name"] == name
        assert name in table
        assert host("show", pf["address"], "--json").json()["name"] == name
    igb = pf_by_driver(host, "igb")
    assert igb["name"] in host("show", igb["address"]).out


def test_show_text_has_every_vf_setting_json_has(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")["netdev"]
    assert host("enable", pf, "2").code == 0
    r = host("set", pf, "vf1", "--trust", "on", "--spoofchk", "off")
    assert r.code == 0, r.err
    r = host("set", pf, "vf1", "--link-state", "disable", "--max-tx-rate", "500")
    assert r.code == 0, r.err
    vf1 = host("show", pf, "--json").json()["vfs"][1]
    assert (vf1["trust"], vf1["spoofchk"], vf1["link_state"], vf1["max_tx_rate"]) == (
        True,
        False,
        "disable",
        500,
    )
    out = host("show", pf).out
    header = next(line for line in out.splitlines() if "spoof-check" in line)
    for col in ("trust", "link", "tx rate"):
        assert col in header
    row1 = next(line for line in out.splitlines() if re.search(rf"\b{vf1['address']}\b", line))
    cells = [c.strip() for c in re.split(r"[│┃]", row1) if c.strip()]
    assert cells[6:10] == ["off", "on", "disable", "max 500"], cells
    row0 = next(line for line in out.splitlines() if line.strip("│ ").startswith("0 "))
    cells0 = [c.strip() for c in re.split(r"[│┃]", row0) if c.strip()]
    assert cells0[6:10] == ["on", "off", "auto", "no limit"], cells0


def test_plan_after_a_count_change_shows_no_fake_changes(host: SimHost) -> None:
    r = host("apply", str(PROFILES / "sim-default.yaml"), "--check", "--json")
    assert r.code == 0, r.err
    details = [a["detail"] for a in r.json()["actions"]]
    for d in details:
        if " -> " in d:
            old, new = d.split(" -> ")
            assert old != new, d
    # the profile's spoof-check on the 4 VFs that do not exist yet: said, but as "ensure"
    assert details.count("ensure spoofchk=on") == 4
    text = host("apply", str(PROFILES / "sim-default.yaml"), "--check").out
    assert "spoofchk=on -> spoofchk=on" not in text and "ensure spoofchk=on" in text


def test_change_wording() -> None:
    assert _change({"trust": False}, {"trust": True}) == "trust=off -> trust=on"
    assert _change({"spoofchk": True}, {"spoofchk": True}) == "ensure spoofchk=on"
