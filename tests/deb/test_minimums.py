"""Declared minimums are Debian's versions, and where Debian's is too old vfctl says so."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from vfctl.backends.pve_client import check_proxmoxer
from vfctl.errors import BackendError

REPO = Path(__file__).parents[2]
BOOKWORM = {"typer": "0.7", "rich": "13.3", "pyyaml": "6.0", "pyroute2": "0.7.2"}


def test_pyproject_minimums_are_bookworms() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    found = [re.match(r"([\w-]+)>=([\d.]+)", d) for d in deps]
    mins = {m.group(1).lower(): m.group(2) for m in found if m}
    assert mins == BOOKWORM
    assert "pyroute2" in (REPO / "debian/control").read_text()


def test_proxmoxer_1x_is_refused_with_what_to_do() -> None:
    with pytest.raises(BackendError, match=r"proxmoxer 1\.2\.0 is too old: .*>= 2\.0"):
        check_proxmoxer("1.2.0")
    check_proxmoxer("2.2.0")
    check_proxmoxer("2.0.1")


def test_deb_version_follows_the_package() -> None:
    """vfctl_<version>_amd64.deb takes its version from debian/changelog: keep them equal."""
    from vfctl import __version__

    top = (REPO / "debian/changelog").read_text().splitlines()[0]
    assert top.startswith(f"vfctl ({__version__})"), (top, __version__)
