"""pyproject.toml lists the packages explicitly (discovery would walk .lab/ and .bench/): every
vfctl subpackage must be in that list, or an installed vfctl (the .deb, a wheel) lacks it while
the editable install used by the tests still has it."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_installed() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "vfctl").rglob("__init__.py")
    }
    assert on_disk == listed
