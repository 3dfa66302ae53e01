"""The five real SR-IOV dumps decode to what expected.json and lspci -vvv say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lspci_compare import compare
from pcitools import CORPUS, DATA, corpus_bytes, lspci_vvv

from vfctl.pci import capnames, configspace

EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())


def test_corpus_is_complete() -> None:
    assert sorted(EXPECTED) == CORPUS and len(CORPUS) == 5


@pytest.mark.parametrize("name", CORPUS)
def test_against_stored_lspci_output(name: str) -> None:
    doc = configspace.parse(corpus_bytes(name))
    compare(doc, (DATA / name.replace(".hex", ".lspci-vvv.txt")).read_text())
    assert doc["errors"] == [] and doc["truncated"] is False


@pytest.mark.parametrize("name", CORPUS)
def test_against_live_lspci(name: str, lspci: str, tmp_path: Path) -> None:
    # Round-trip through our own loader and a fresh file, so the bytes lspci sees are ours.
    data = corpus_bytes(name)
    f = tmp_path / name
    f.write_text((DATA / name).read_text())
    compare(configspace.parse(data), lspci_vvv(f))


@pytest.mark.parametrize("name", CORPUS)
def test_against_expected_raw(name: str) -> None:
    exp = EXPECTED[name]
    doc = configspace.parse(corpus_bytes(name))
    assert f"{doc['vendor_id']}:{doc['device_id']}" == exp["vendor_device"]
    assert [f"{c['offset']:02x}:{c['id']:02x}" for c in doc["capabilities"]] == exp[
        "std_capabilities"
    ]
    assert [
        f"{c['offset']:03x}:{c['id']:04x}:v{c['version']}" for c in doc["extended_capabilities"]
    ] == exp["ext_capabilities"]

    raw = exp["sriov"]["raw"]
    s = doc["sriov"]
    assert s["offset"] == int(raw["cap_offset"], 16)
    for key in ("total_vfs", "initial_vfs", "num_vfs", "vf_stride", "function_dependency_link"):
        assert s[key] == raw[key], key
    assert s["vf_offset"] == raw["first_vf_offset"]
    assert s["vf_device_id"] == raw["vf_device_id"]
    assert s["supported_page_sizes"] == int(raw["supported_page_sizes"], 16)
    assert s["system_page_size"] == int(raw["system_page_size"], 16)
    for key in ("vf_enable", "vf_mse", "vf_migration_capable"):
        assert s[key] == raw[key], key
    assert s["ari_hierarchy"] == raw["ari_capable_hierarchy"]
    assert [
        (b["index"], b["address"], b["type"] == "mem64", b["prefetchable"]) for b in s["vf_bars"]
    ] == [
        (b["region"], int(b["address"], 16), b["64bit"], b["prefetchable"]) for b in raw["vf_bars"]
    ]

    ari = exp["ari"]["raw"]
    if ari is None:
        assert doc["ari"] is None
    else:
        got = doc["ari"]
        assert (got["mfvc"], got["acs"], got["next_function"]) == (
            ari["mfvc"],
            ari["acs"],
            ari["next_function"],
        )
        assert (got["mfvc_group"], got["acs_group"], got["function_group"]) == (
            ari["ctl_mfvc"],
            ari["ctl_acs"],
            ari["function_group"],
        )

    acs = exp["acs"]["raw"]
    if acs is None:
        assert doc["acs"] is None
    else:
        cap, ctl = int(acs["acs_cap_raw"], 16), int(acs["acs_ctl_raw"], 16)
        assert [doc["acs"][k] for k in list(doc["acs"])[:7]] == [
            bool(cap >> i & 1) for i in range(7)
        ]
        assert [doc["acs"][k] for k in list(doc["acs"])[7:]] == [
            bool(ctl >> i & 1) for i in range(7)
        ]

    pcie = exp["pcie"]["raw"]
    p = doc["pcie"]
    assert p["version"] == pcie["version"]
    assert p["device_type"] == capnames.DEVICE_TYPES[pcie["device_port_type"]]
    if pcie["device_port_type"] in (9, 10):
        assert p["link_speed_max"] is None and p["link_width"] is None
    else:
        speed = capnames.LINK_SPEEDS.get
        assert p["link_speed_max"] == speed(pcie["max_link_speed_code"], "unknown")
        assert p["link_speed"] == speed(pcie["cur_link_speed_code"], "unknown")
        assert p["link_width_max"] == pcie["max_link_width"]
        assert p["link_width"] == pcie["neg_link_width"]


@pytest.mark.parametrize("name", CORPUS)
def test_header_fields(name: str) -> None:
    data = corpus_bytes(name)
    doc = configspace.parse(data)
    assert doc["header_type"] == data[0x0E] & 0x7F
    assert doc["class"] == data[0x0B:0x08:-1].hex()
    stored = (DATA / name.replace(".hex", ".lspci-vvv.txt")).read_text()
    first = stored.splitlines()[0]
    assert f"[{doc['class'][:4]}]" in first
    sub = [line for line in stored.splitlines() if line.startswith("\tSubsystem:")]
    if doc["subsystem_vendor_id"] is None:
        assert sub == []
    else:
        assert sub[0].endswith(f"[{doc['subsystem_vendor_id']}:{doc['subsystem_id']}]")


@pytest.mark.parametrize("name", CORPUS)
@pytest.mark.parametrize("size", [64, 256])
def test_short_config_ends_the_walk(name: str, size: int) -> None:
    """Unprivileged sysfs reads give 64 bytes; conventional-PCI configs give 256."""
    full = configspace.parse(corpus_bytes(name))
    doc = configspace.parse(corpus_bytes(name)[:size])
    assert doc["truncated"] is True and doc["errors"] == []
    assert doc["vendor_id"] == full["vendor_id"] and doc["sriov"] is None
    assert doc["extended_capabilities"] == []
    if size == 256:
        assert doc["capabilities"] == full["capabilities"] and doc["pcie"] == full["pcie"]
    else:
        assert doc["capabilities"] == [] and doc["pcie"] is None
