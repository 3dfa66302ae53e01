"""Shared helpers for the config-space tests: corpus access, byte surgery, lspci output."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

from vfctl.pci import configspace

DATA = Path(__file__).parent / "data"
CORPUS = sorted(p.name for p in DATA.glob("*.hex"))


def corpus_bytes(name: str) -> bytes:
    return configspace.load_dump((DATA / name).read_bytes())


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
