"""Edited real dumps: every field we decode still agrees with a live `lspci -vvv`.

The edits move one register at a time through values the corpus does not cover (device
types, link speeds, ACS/ARI/SR-IOV bits, VF BAR encodings, looped chains).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lspci_compare import compare
from pcitools import corpus_bytes, get32, hexdump, lspci_vvv, put16, put32

from vfctl.pci import configspace

INTEL = "8086_10c9_1.hex"  # PCIe cap at 0xa0; AER 100, DSN 140, ARI 150, SR-IOV 160
CAVIUM = "177d_a01e_1.hex"  # SR-IOV at 0x180, VF BARs all zero
ANON = "aaaa_bbbb_1.hex"  # ACS at 0x450
EXP = 0xA0
SRIOV = 0x160


def _pcie_type(t: int) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        put16(b, EXP + 2, (b[EXP + 2] & 0x0F) | t << 4)

    return edit


def _link(
    cap_speed: int, cap_width: int, sta_speed: int, sta_width: int
) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        put32(b, EXP + 0x0C, (get32(b, EXP + 0x0C) & ~0x3FF) | cap_width << 4 | cap_speed)
        put16(b, EXP + 0x12, sta_width << 4 | sta_speed)

    return edit


def _vf_bars(bars: list[int]) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        for i, v in enumerate(bars):
            put32(b, 0x180 + 0x24 + 4 * i, v)

    return edit


def _acs(cap: int, ctl: int) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        put16(b, 0x454, cap)
        put16(b, 0x456, ctl)

    return edit


def _ari(cap: int, ctl: int) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        put16(b, 0x154, cap)
        put16(b, 0x156, ctl)

    return edit


def _sriov_bits(cap: int, ctl: int) -> Callable[[bytearray], None]:
    def edit(b: bytearray) -> None:
        put32(b, SRIOV + 4, cap)
        put16(b, SRIOV + 8, ctl)

    return edit


def _std_loop(b: bytearray) -> None:
    b[EXP + 1] = 0x50  # PCIe (last) -> MSI again


def _ext_loop(b: bytearray) -> None:
    put32(b, SRIOV, (get32(b, SRIOV) & 0xFFFFF) | 0x140 << 20)


VARIANTS: list[tuple[str, str, Callable[[bytearray], None]]] = [
    *[(f"pcie-type-{t}", INTEL, _pcie_type(t)) for t in (0, 1, 4, 5, 6, 7, 8, 9, 10)],
    *[(f"link-{s}", INTEL, _link(s, 16, max(s - 1, 1), 8)) for s in range(1, 8)],
    ("link-zero", INTEL, _link(0, 0, 0, 0)),
    ("vf-bars-mixed", CAVIUM, _vf_bars([0xC, 0, 0x1001, 0xFEDC0000, 0x10000004, 0x2])),
    ("vf-bars-64-pref", CAVIUM, _vf_bars([0xE000000C, 0x1, 0x8, 0, 0xF0000000, 0])),
    ("vf-bar5-64", CAVIUM, _vf_bars([0, 0, 0, 0, 0, 0x10000004])),
    ("acs-all", ANON, _acs(0x7F, 0x7F)),
    ("acs-some", ANON, _acs(0x5A, 0x25)),
    ("ari-bits", INTEL, _ari(0xAB03, 0x0053)),
    ("ari-other", INTEL, _ari(0x0102, 0x0062)),
    ("sriov-bits", INTEL, _sriov_bits(0x1, 0x19)),
    ("sriov-off", INTEL, _sriov_bits(0x0, 0x0)),
    ("std-loop", INTEL, _std_loop),
    ("ext-loop", INTEL, _ext_loop),
]


@pytest.mark.parametrize(("label", "name", "edit"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_matches_lspci(
    label: str, name: str, edit: Callable[[bytearray], None], lspci: str, tmp_path: Path
) -> None:
    data = bytearray(corpus_bytes(name))
    edit(data)
    f = tmp_path / f"{label}.hex"
    f.write_text(hexdump(bytes(data)))
    doc = configspace.parse(bytes(data))
    compare(doc, lspci_vvv(f))
    if label.endswith("loop"):
        assert any("loops back" in e for e in doc["errors"])
