"""Config bytes from what a user hands ``vfctl decode``: raw bytes or ``lspci -x`` text."""

from __future__ import annotations

import re

from vfctl.pci import regs as R

CONFIG_SIZES = (R.PCI_STD_HEADER_SIZEOF, R.PCI_CFG_SPACE_SIZE, R.PCI_CFG_SPACE_EXP_SIZE)

_HEX_LINE = re.compile(r"^([0-9a-fA-F]{2,3}):((?: [0-9a-fA-F]{2}){1,16})\s*$")


def _load_hex(text: str) -> bytes:
    out = bytearray()
    started = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        m = _HEX_LINE.match(line)
        if m is None:
            if not line.strip():
                continue
            if started:
                what = "a second device" if not line[:1].isspace() else "an unexpected line"
                raise ValueError(f"hex dump line {lineno}: {what}: {line.strip()[:40]!r}")
            continue  # the device line(s) lspci prints before the bytes
        if not started and out == b"" and int(m.group(1), 16) != 0:
            raise ValueError(f"hex dump line {lineno}: starts at offset {m.group(1)}, not 00")
        started = True
        if int(m.group(1), 16) != len(out):
            raise ValueError(
                f"hex dump line {lineno}: offset {m.group(1)} where 0x{len(out):x} was expected"
            )
        row = bytes.fromhex(m.group(2))
        if len(row) != 16:
            raise ValueError(f"hex dump line {lineno}: {len(row)} bytes, expected 16")
        out += row
    if not started:
        raise ValueError("not an lspci hex dump: no 'OFFSET: xx xx ...' lines")
    if len(out) not in CONFIG_SIZES:
        raise ValueError(f"hex dump holds {len(out)} bytes; expected 64, 256 or 4096 (truncated?)")
    return bytes(out)


def _looks_like_hex(data: bytes) -> str | None:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if any(_HEX_LINE.match(line.rstrip()) for line in text.splitlines()[:3]):
        return text
    return None


def load_dump(data: bytes) -> bytes:
    """Config bytes from raw bytes or ``lspci -x/-xxx/-xxxx`` text; ValueError otherwise."""
    text = _looks_like_hex(data)
    if text is not None:
        return _load_hex(text)
    if len(data) in CONFIG_SIZES:
        return bytes(data)
    raise ValueError(
        f"{len(data)} bytes is neither raw config space (64, 256 or 4096 bytes) "
        "nor an lspci -x/-xxx/-xxxx hex dump"
    )
