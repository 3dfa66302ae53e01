"""load_dump: raw bytes and lspci -x/-xxx/-xxxx text in, config bytes or one-line ValueError out."""

from __future__ import annotations

import pytest
from pcitools import CORPUS, DATA, corpus_bytes, hexdump

from vfctl.pci.dumpfile import load_dump

FULL = corpus_bytes(CORPUS[0])


@pytest.mark.parametrize("size", [64, 256, 4096])
def test_raw_sizes_pass_through(size: int) -> None:
    assert load_dump(FULL[:size]) == FULL[:size]


@pytest.mark.parametrize("size", [64, 256, 4096])
@pytest.mark.parametrize("device_line", [None, "01:00.0 Ethernet controller: Intel 82576 (rev 01)"])
def test_hex_dump_round_trip(size: int, device_line: str | None) -> None:
    assert load_dump(hexdump(FULL[:size], device_line).encode()) == FULL[:size]


def test_corpus_files_are_4096_bytes() -> None:
    for name in CORPUS:
        assert len(load_dump((DATA / name).read_bytes())) == 4096


def test_uppercase_and_crlf_hex() -> None:
    text = hexdump(FULL[:64]).upper().replace("\n", "\r\n")
    assert load_dump(text.encode()) == FULL[:64]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "0 bytes"),
        (b"\x00" * 100, "100 bytes"),
        (b"hello world\n", "bytes"),
        (hexdump(FULL[:48]).encode(), "48 bytes"),
        (hexdump(FULL[:256]).encode().replace(b"\n40:", b"\n50:", 1), "offset 50"),
        (hexdump(FULL[:80]).replace("\n00: ", "\nxx ", 1).encode(), "not 00"),
        ((hexdump(FULL[:64]) + "\n" + hexdump(FULL[:64])).encode(), "second device"),
        (hexdump(FULL[:64]).encode().replace(b" 00\n", b"\n", 1), "15 bytes"),
    ],
)
def test_garbage_is_one_line_value_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ValueError) as exc:
        load_dump(data)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg
