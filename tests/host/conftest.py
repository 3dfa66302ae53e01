"""End-to-end CLI tests on simulated hosts: the same commands an admin runs, with exit codes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl.host import sim

_TEMPLATES: dict[str, Path] = {}


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-templates")


@pytest.fixture
def make_host(tmp_path: Path, _templates: Path) -> Callable[[str], SimHost]:
    n = iter(range(100))

    def make(preset: str = "default") -> SimHost:
        if preset not in _TEMPLATES:
            sim.init(_templates / preset, preset)
            _TEMPLATES[preset] = _templates / preset
        root = tmp_path / f"host{next(n)}"
        shutil.copytree(_TEMPLATES[preset], root, symlinks=True)
        return SimHost(root)

    return make


@pytest.fixture
def host(make_host: Callable[[str], SimHost]) -> SimHost:
    return make_host("default")
