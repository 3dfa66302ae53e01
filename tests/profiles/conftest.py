"""Fixtures for the profile tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from profhelp import make_sim


@pytest.fixture
def sim(tmp_path: Path) -> Callable[[str], Path]:
    n = [0]

    def make(preset: str = "default") -> Path:
        n[0] += 1
        return make_sim(tmp_path / f"host{n[0]}", preset)

    return make
