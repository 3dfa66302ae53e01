"""Input hardening (issue 11): every hostile input ends in a one-line error and its exit code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vfctl import sim


@pytest.fixture(scope="session")
def _sim_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hard-template") / "host"
    sim.init(root, "default")
    return root


@pytest.fixture
def simroot(tmp_path: Path, _sim_template: Path) -> Path:
    """A fresh copy of a default simulated host (PF enp1s0f0 is an 82599 with 63 VFs)."""
    root = tmp_path / "host"
    shutil.copytree(_sim_template, root, symlinks=True)
    return root
