"""Fixtures for the config-space tests (helpers live in pcitools.py)."""

from __future__ import annotations

import pytest
from needs import required
from pcitools import lspci_path

from vfctl.pci import configspace


@pytest.fixture
def lspci() -> str:
    path = lspci_path()
    if path is None:
        if required("VFCTL_LSPCI"):
            pytest.fail("lspci (pciutils) is required here but not installed")
        pytest.skip("lspci (pciutils) not installed")
    return path


@pytest.fixture
def c_ext() -> None:
    if configspace._C_PARSE_FILES is None:
        if required("VFCTL_C_EXT"):
            pytest.fail("the vfctl.pci._configspace extension is required here but not built")
        pytest.skip("C extension not built")
