"""What every part of the simulator shares: the state's shape, the tree's fixed paths, the
kernel's way of failing (an OSError with the errno and its strerror)."""

from __future__ import annotations

import os

from vfctl import vfattrs

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    State = dict[str, Any]
    Dev = dict[str, Any]
else:
    State = Dev = dict

MARKER = ".vfctl-sim"  # what host.open.open_host looks for (a test keeps the two equal)
DEVICES = "sys/devices"
BUS_DEVICES = "sys/bus/pci/devices"
BUS_DRIVERS = "sys/bus/pci/drivers"
IOMMU_GROUPS = "sys/kernel/iommu_groups"
VF_DEFAULTS: dict[str, Any] = dict(vfattrs.DEFAULTS)  # what the kernel gives a new VF


def oserr(code: int, msg: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: {msg}")


def simdir(root: Path) -> Path:
    return root / MARKER
