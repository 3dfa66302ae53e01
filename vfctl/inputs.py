"""Checks of values people and files hand to vfctl: pure functions, UsageError (exit 2) on bad input.

Every pattern is matched with ``re.fullmatch``: ``re.match(r"...$")`` also accepts a trailing
newline, which would carry a second line into sysfs, a unit file or an API request.
"""

from __future__ import annotations

import math
import re

from vfctl.errors import UsageError

# A kernel module name: what `modprobe` and /sys/module take. MODULE_NAME_LEN is
# 64 - sizeof(unsigned long) with the trailing NUL (include/linux/module.h), so 55 characters on
# 64-bit; PCI driver names (struct pci_driver.name, the /sys/bus/pci/drivers/<name> directory)
# use the same alphabet: letters, digits, '_' and '-' (vfio-pci, mlx5_core, pci-stub).
MODULE_NAME = re.compile(r"[A-Za-z0-9_-]{1,55}")
MAX_SECONDS = 7 * 24 * 3600.0  # far beyond any wait vfctl needs; finite, so deadlines compute


def shown(value: str, limit: int = 60) -> str:
    """A value safe to put in a one-line message: control characters escaped, length capped."""
    text = value if len(value) <= limit else value[:limit] + "…"
    return repr(text)


def driver_name(name: str, what: str = "driver") -> str:
    """Refuse a driver/module name the kernel could not have: '..', 'a b', 'vfio-pci\\n'."""
    if not isinstance(name, str) or MODULE_NAME.fullmatch(name) is None:
        raise UsageError(
            f"invalid {what} {shown(str(name))}: a kernel module name "
            "(letters, digits, '_' or '-', at most 55 characters)"
        )
    return name


def seconds(value: float | None, what: str) -> float | None:
    """A wait in seconds: finite and non-negative (``nan``/``inf`` would wait forever)."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
        raise UsageError(
            f"invalid {what} {value!r}: a finite number of seconds, 0 to {MAX_SECONDS:g}"
        )
    return float(value)


def one_line(value: str, what: str) -> str:
    """Refuse control characters (newlines, CR, NUL…) in a value that ends up in a line-based file."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(f"invalid {what} {shown(value)}: control characters are not allowed")
    return value
