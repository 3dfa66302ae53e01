"""The JSON rows' C extension against its twin, as built and under ASan/UBSan."""

from __future__ import annotations

from pathlib import Path

from asan import run_driver, sanitized
from needs import missing

from vfctl import jsonrows

DRIVER = Path(__file__).parent / "jsonrows_driver.py"


def test_built_extension_matches_twin() -> None:
    if jsonrows._C_MOD is None:
        missing("the vfctl._jsonrows extension is not built", "VFCTL_C_EXT")
    run_driver(DRIVER, [str(jsonrows._C_MOD.__file__), "3000"], asan=False)


def test_sanitized_extension_is_clean() -> None:
    run_driver(DRIVER, [sanitized("_jsonrows"), "3000"], asan=True)
