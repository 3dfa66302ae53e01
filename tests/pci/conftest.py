"""Fixtures for the config-space tests (helpers live in pcitools.py)."""

from __future__ import annotations

import pytest
from needs import missing
from pcitools import lspci_path

from vfctl.pci import configspace


@pytest.fixture
def lspci() -> str:
    path = lspci_path()
    if path is None:
        missing("lspci (pciutils) not installed", "VFCTL_LSPCI")
    return path


@pytest.fixture
def c_ext() -> None:
    if configspace._C_PARSE_FILES is None:
        missing("the vfctl.pci._configspace extension is not built", "VFCTL_C_EXT")
