"""Compare a configspace document with what `lspci -vvv` printed for the same bytes."""

from __future__ import annotations

import re
from typing import Any

from pcitools import flag, lspci_sections, section

EXPRESS_TYPES = (
    ("Legacy Endpoint", "legacy_endpoint"),
    ("Endpoint", "endpoint"),
    ("Root Port", "root_port"),
    ("Upstream Port", "upstream_port"),
    ("Downstream Port", "downstream_port"),
    ("PCI-Express to PCI/PCI-X Bridge", "pcie_pci_bridge"),
    ("PCI/PCI-X to PCI-Express Bridge", "pci_pcie_bridge"),
    ("Root Complex Integrated Endpoint", "rc_integrated_endpoint"),
    ("Root Complex Event Collector", "rc_event_collector"),
)

ACS_FLAGS = (
    ("SrcValid", "source_validation"),
    ("TransBlk", "translation_blocking"),
    ("ReqRedir", "request_redirect"),
    ("CmpltRedir", "completion_redirect"),
    ("UpstreamFwd", "upstream_forwarding"),
    ("EgressCtrl", "egress_control"),
    ("DirectTrans", "direct_translated"),
)


def one(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, f"{prefix!r} in {lines}"
    return found[0]


def compare(doc: dict[str, Any], text: str) -> None:
    """Assert every SR-IOV, ARI, ACS, PCIe-link and capability-list fact lspci printed."""
    secs = lspci_sections(text)
    heads = re.findall(r"^\tCapabilities: \[([0-9a-f]+)( v(\d+))?\] (?!<chain)", text, re.M)
    for off in re.findall(r"^\tCapabilities: \[([0-9a-f]+)[^]]*\] <chain looped>", text, re.M):
        assert any(e.endswith(f"loops back to 0x{int(off, 16):02x}") for e in doc["errors"])
    assert [int(o, 16) for o, v, _ in heads if not v] == [c["offset"] for c in doc["capabilities"]]
    assert [(int(o, 16), int(n)) for o, v, n in heads if v] == [
        (c["offset"], c["version"]) for c in doc["extended_capabilities"]
    ]
    _sriov(doc["sriov"], section(secs, "Single Root I/O Virtualization"))
    _ari(doc["ari"], section(secs, "(ARI)"))
    _acs(doc["acs"], section(secs, "Access Control Services"))
    _pcie(doc["pcie"], section(secs, "Express ("), secs)


def _sriov(sriov: dict[str, Any] | None, sec: tuple[int, list[str]] | None) -> None:
    if sec is None:
        assert sriov is None
        return
    assert sriov is not None
    off, lines = sec
    assert sriov["offset"] == off
    m = re.match(
        r"Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+), "
        r"Function Dependency Link: ([0-9a-f]+)",
        one(lines, "Initial VFs:"),
    )
    assert m, lines
    assert (sriov["initial_vfs"], sriov["total_vfs"], sriov["num_vfs"]) == tuple(
        int(x) for x in m.groups()[:3]
    )
    assert sriov["function_dependency_link"] == int(m.group(4), 16)
    m = re.match(
        r"VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-f]{4})", one(lines, "VF offset:")
    )
    assert m, lines
    assert (sriov["vf_offset"], sriov["vf_stride"], sriov["vf_device_id"]) == (
        int(m.group(1)),
        int(m.group(2)),
        m.group(3),
    )
    m = re.match(
        r"Supported Page Size: ([0-9a-f]+), System Page Size: ([0-9a-f]+)",
        one(lines, "Supported Page Size"),
    )
    assert m, lines
    assert sriov["supported_page_sizes"] == int(m.group(1), 16)
    assert sriov["system_page_size"] == int(m.group(2), 16)
    ctl = one(lines, "IOVCtl:")
    assert sriov["vf_enable"] == flag(ctl, "Enable")
    assert sriov["vf_mse"] == flag(ctl, "MSE")
    assert sriov["ari_hierarchy"] == flag(ctl, "ARIHierarchy")
    assert sriov["vf_migration_capable"] == flag(one(lines, "IOVCap:"), "Migration")
    bars = []
    for line in lines:
        m = re.match(
            r"Region (\d): Memory at ([0-9a-f]+) \((32|64)-bit, (non-)?prefetchable\)", line
        )
        if m:
            bars.append(
                {
                    "index": int(m.group(1)),
                    "address": int(m.group(2), 16),
                    "type": f"mem{m.group(3)}",
                    "prefetchable": m.group(4) is None,
                }
            )
    assert sriov["vf_bars"] == bars


def _ari(ari: dict[str, Any] | None, sec: tuple[int, list[str]] | None) -> None:
    if sec is None:
        assert ari is None
        return
    assert ari is not None
    _, lines = sec
    cap, ctl = one(lines, "ARICap:"), one(lines, "ARICtl:")
    assert (ari["mfvc"], ari["acs"]) == (flag(cap, "MFVC"), flag(cap, "ACS"))
    assert ari["next_function"] == int(re.search(r"Next Function: (\d+)", cap).group(1))  # type: ignore[union-attr]
    assert (ari["mfvc_group"], ari["acs_group"]) == (flag(ctl, "MFVC"), flag(ctl, "ACS"))
    assert ari["function_group"] == int(re.search(r"Function Group: (\d+)", ctl).group(1))  # type: ignore[union-attr]


def _acs(acs: dict[str, Any] | None, sec: tuple[int, list[str]] | None) -> None:
    if sec is None:
        assert acs is None
        return
    assert acs is not None
    _, lines = sec
    cap, ctl = one(lines, "ACSCap:"), one(lines, "ACSCtl:")
    for lspci_name, key in ACS_FLAGS:
        assert acs[key] == flag(cap, lspci_name), key
        assert acs["ctrl_" + key] == flag(ctl, lspci_name), key


def _pcie(
    pcie: dict[str, Any] | None,
    sec: tuple[int, list[str]] | None,
    secs: dict[str, list[str]],
) -> None:
    if sec is None:
        assert pcie is None
        return
    assert pcie is not None
    title = next(k for k in secs if "Express (" in k)
    m = re.search(r"Express \(v(\d+)\) (.*)$", title)
    assert m, title
    assert pcie["version"] == int(m.group(1))
    kind = next(v for k, v in EXPRESS_TYPES if m.group(2).startswith(k))
    assert pcie["device_type"] == kind
    _, lines = sec
    caps = [line for line in lines if line.startswith("LnkCap:")]
    stas = [line for line in lines if line.startswith("LnkSta:")]
    if not caps:
        assert pcie["link_speed_max"] is None and pcie["link_width_max"] is None
        assert pcie["link_speed"] is None and pcie["link_width"] is None
        return
    m = re.search(r"Speed ([^,]+), Width x(\d+)", caps[0])
    assert m, caps
    assert (pcie["link_speed_max"], pcie["link_width_max"]) == (m.group(1), int(m.group(2)))
    m = re.search(r"Speed ([^, ]+)(?: \([a-z]+\))?, Width x(\d+)", stas[0])
    assert m, stas
    assert (pcie["link_speed"], pcie["link_width"]) == (m.group(1), int(m.group(2)))
