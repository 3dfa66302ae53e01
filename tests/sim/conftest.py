"""Fixtures for the kernel simulator's tests: fresh simulated hosts per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vfctl import sim


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[[str], Path]:
    counter = iter(range(1000))

    def make(preset: str = "minimal") -> Path:
        root = tmp_path / f"host{next(counter)}"
        sim.init(root, preset)
        return root

    return make


@pytest.fixture
def minimal(make_host: Callable[[str], Path]) -> Path:
    return make_host("minimal")
