"""pci.ids names found by a search equal what a line-by-line reading finds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vfctl import pciids


def _by_lines(path: str, vendor: str, device: str) -> str | None:
    """The reference: pci.ids read line by line (vendor block, then its device lines)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        in_vendor = False
        for line in f:
            if not line or line[0] == "#":
                continue
            if line[0] != "\t":
                if in_vendor:
                    return None
                in_vendor = line[:4].lower() == vendor
            elif in_vendor and line[1] != "\t" and line[1:5].lower() == device:
                return line[5:].strip()
    return None


CRAFTED = (
    "# comment 8086\n"
    "8086  Intel\n"
    "\t10c9  82576 Gigabit\n"
    "# a comment inside the block\n"
    "\t\t8086 0000  a subsystem, not a device\n"
    "\t10CA  Upper-case id, \xe9 in the name  \n"
    "15b3  Mellanox\n"
    "\t1018  ConnectX-5 VF\n"
    "8086  a second Intel block is never read\n"
    "\t1520  hidden\n"
    "1Af4  a mixed-case vendor id (searched for in each case spelling)\n"
    "\t1000  virtio\n"
    "BEEF  an upper-case vendor id with four letters (the file lowered instead)\n"
    "\tbeef  found\n"
    "AbCd  a vendor line in mixed case (found case-blind, without lowering the file)\n"
    "\tFe0a  its device\n"
    "\n"
    "C 02  Network controller\n"
    "\t00  Ethernet"
)


def _pairs(path: str) -> list[tuple[str, str]]:
    out = []
    vendor = "0000"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line[:1] not in ("\t", "#", "\n", ""):
                vendor = line[:4]
            elif line.startswith("\t") and not line.startswith("\t\t"):
                out.append((vendor, line[1:5]))
    return out


ODD = [("8086", "10c9"), ("8086", "10ca"), ("8086", "10CA"), ("8086", "1520"), ("15b3", "1018"),
       ("c 02", "00  "), ("8086", "\t\t80"), ("ffff", "0000"), ("????", "????"), ("#", "x"),
       ("8086", ""), ("", "10c9"), ("15B3", "1018"), ("1af4", "1000"), ("1AF4", "1000"),
       ("beef", "beef"), ("1af4", "abcd"), ("abcd", "fe0a"), ("ABCD", "fe0a"),
       ("abcdefab", "fe0a")]  # fmt: skip


def test_crafted_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "pci.ids"
    f.write_text(CRAFTED, encoding="utf-8")
    monkeypatch.setattr(pciids, "PATHS", (str(tmp_path / "absent"), str(f)))
    pciids.cache_clear()
    got = {(v, d): pciids.name(v, d) for v, d in ODD}
    pciids.cache_clear()
    assert got == {(v, d): _by_lines(str(f), v, d) for v, d in ODD}
    assert got[("8086", "10ca")] == "Upper-case id, \xe9 in the name"
    assert got[("15b3", "1018")] == "ConnectX-5 VF" and got[("8086", "1520")] is None
    assert got[("1af4", "1000")] == "virtio" and got[("beef", "beef")] == "found"
    assert got[("abcd", "fe0a")] == "its device" and got[("c 02", "00  ")] == "Ethernet"


def test_the_systems_file_agrees_with_a_line_by_line_reading() -> None:
    path = next((p for p in pciids.PATHS if Path(p).exists()), None)
    if path is None:
        pytest.skip("no pci.ids on this machine")
    pairs = _pairs(path)
    sample = random.Random(16).sample(pairs, min(400, len(pairs))) + ODD
    for v, d in sample:
        assert pciids._lookup(v, d) == _by_lines(path, v, d), (v, d)


def test_a_fifo_or_a_directory_in_place_of_pci_ids_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened non-blocking and only as a regular file: no hang on a FIFO, the next path is read."""
    import os

    fifo, d, f = tmp_path / "fifo", tmp_path / "dir", tmp_path / "pci.ids"
    os.mkfifo(fifo)
    d.mkdir()
    f.write_text(CRAFTED, encoding="utf-8")
    monkeypatch.setattr(pciids, "PATHS", (str(fifo), str(d), str(f)))
    pciids.cache_clear()
    try:
        assert pciids.name("15b3", "1018") == "ConnectX-5 VF"
        assert pciids._read(str(fifo)) is None and pciids._read(str(d)) is None
    finally:
        pciids.cache_clear()
