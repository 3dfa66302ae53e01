"""Vendor/device names from the system's pci.ids (only for tables; JSON stays id-based)."""

from __future__ import annotations

import functools

PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")


@functools.lru_cache(maxsize=256)
def name(vendor: str, device: str) -> str | None:
    """Device name from pci.ids, scanning only the vendor's block."""
    for path in PATHS:
        try:
            f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError:
            continue
        with f:
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
    return None
