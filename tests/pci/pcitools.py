"""Shared helpers for the config-space tests: corpus access, byte surgery, lspci output."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

from vfctl.pci import dumpfile

DATA = Path(__file__).parent / "data"
CORPUS = sorted(p.name for p in DATA.glob("*.hex"))


def corpus_bytes(name: str) -> bytes:
    return dumpfile.load_dump((DATA / name).read_bytes())


def put16(b: bytearray, off: int, v: int) -> None:
    struct.pack_into("<H", b, off, v)


def put32(b: bytearray, off: int, v: int) -> None:
    struct.pack_into("<I", b, off, v)


def get32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", b, off)[0])


def hexdump(data: bytes, device_line: str | None = "00:00.0 Class 0200: 8086:10c9") -> str:
    """The text `lspci -x/-xxx/-xxxx` prints (and `lspci -F` reads back)."""
    lines = [device_line] if device_line is not None else []
    for off in range(0, len(data), 16):
        row = " ".join(f"{x:02x}" for x in data[off : off + 16])
        lines.append(f"{off:02x}: {row}" if off < 0x100 else f"{off:03x}: {row}")
    return "\n".join(lines) + "\n"


def lspci_path() -> str | None:
    return shutil.which("lspci")


def lspci_vvv(hexfile: Path) -> str:
    out = subprocess.run(
        ["lspci", "-F", str(hexfile), "-vvv", "-nn"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout


def lspci_sections(text: str) -> dict[str, list[str]]:
    """Map each `Capabilities: [off ...] Title` line to the indented lines under it."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = re.match(r"^\tCapabilities: \[([0-9a-f]+)(?: v\d+)?\] (.*)$", line)
        if m:
            current = sections.setdefault(f"{m.group(1)} {m.group(2)}", [])
            continue
        if line.startswith("\t\t") and current is not None:
            current.append(line.strip())
        elif not line.startswith("\t\t"):
            current = None
    return sections


def section(sections: dict[str, list[str]], title_part: str) -> tuple[int, list[str]] | None:
    for key, lines in sections.items():
        if title_part in key:
            return int(key.split()[0], 16), lines
    return None


def flag(text: str, name: str) -> bool:
    m = re.search(rf"(?<![A-Za-z]){re.escape(name)}([+-])", text)
    assert m is not None, f"{name}± not in {text!r}"
    return m.group(1) == "+"


SRIOV_ID, PCIE_ID = 0x0010, 0x10


def repeated_caps(std: int, ext: int) -> bytes:
    """A config space whose standard chain holds ``std`` PCI Express capabilities and whose
    extended chain holds ``ext`` SR-IOV capabilities that each overrun their space (one error
    each; each is decoded again because none succeeded); both chains end in a loop."""
    assert 0 <= std <= 14 and 1 <= ext <= 14
    b = bytearray(4096)
    put16(b, 0x00, 0x8086)
    put16(b, 0x02, 0x10FB)
    put16(b, 0x06, 0x0010)  # status: capability list
    ptrs = [0x100 - 4 * i for i in range(std, 0, -1)] + [0x40]
    b[0x34] = ptrs[0]
    for pos, nxt in zip(ptrs, [*ptrs[1:], ptrs[0]], strict=True):
        b[pos], b[pos + 1] = PCIE_ID, nxt
        if pos + 3 < 0x100:
            put16(b, pos + 2, 0x0002)  # PCIe capability version 2, endpoint
    first = 0x1000 - 4 * ext
    put32(b, 0x100, 0x0001 | 1 << 16 | first << 20)  # AER, then the SR-IOV copies
    for pos in range(first, 0x1000, 4):
        nxt = pos + 4 if pos + 4 < 0x1000 else first
        put32(b, pos, SRIOV_ID | 1 << 16 | nxt << 20)
    return bytes(b)
