"""Vendor/device names from the system's pci.ids: the `name` that tables and JSON both show.

Ids stay the contract (DESIGN §3); the name is a courtesy that is null where pci.ids is absent.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vfctl.model import HostModel

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


def named(model: HostModel) -> HostModel:
    """The model with each PF's ``name`` filled from pci.ids, so text and JSON agree."""
    pfs = tuple(
        p if p.name else dataclasses.replace(p, name=name(p.vendor_id, p.device_id))
        for p in model.pfs
    )
    return dataclasses.replace(model, pfs=pfs)
