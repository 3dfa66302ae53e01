"""Helpers shared by the simulator tests."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from needs import required


def rd(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


def dev(bdf: str, attr: str = "") -> str:
    return f"sys/bus/pci/devices/{bdf}" + (f"/{attr}" if attr else "")


def errno_of(fn: Callable[[], object]) -> int:
    """The errno a call fails with (the test fails if it does not fail)."""
    with pytest.raises(OSError) as ei:
        fn()
    assert ei.value.errno is not None
    return ei.value.errno


def log_lines(root: Path) -> list[list[str]]:
    text = (root / ".vfctl-sim/writes.log").read_text()
    return [line.split("\t") for line in text.splitlines()]


__all__ = ["dev", "errno", "errno_of", "log_lines", "rd", "required"]
