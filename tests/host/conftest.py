"""End-to-end CLI tests on simulated hosts: the same commands an admin runs, with exit codes."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl import sim

Prepare = Callable[[SimHost], None]
NewHost = Callable[..., SimHost]
_TEMPLATES: dict[str, Path] = {}


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-templates")


@pytest.fixture
def new_host(tmp_path: Path, _templates: Path) -> NewHost:
    """new_host(key, preset, prepare): a copy of a host built once per key for the session
    (`sim init` plus its preparation is slow on disk; a copy is not)."""
    n = itertools.count()

    def make(key: str, preset: str = "default", prepare: Prepare | None = None) -> SimHost:
        if key not in _TEMPLATES:
            root = _templates / key
            sim.init(root, preset)
            if prepare is not None:
                prepare(SimHost(root))
            _TEMPLATES[key] = root
        root = tmp_path / f"{key}-{next(n)}"
        shutil.copytree(_TEMPLATES[key], root, symlinks=True)
        return SimHost(root)

    return make


@pytest.fixture
def make_host(new_host: NewHost) -> Callable[[str], SimHost]:
    return lambda preset="default": new_host(f"preset-{preset}", preset)


@pytest.fixture
def host(make_host: Callable[[str], SimHost]) -> SimHost:
    return make_host("default")
