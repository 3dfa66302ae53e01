"""The batch VF reads' C extension under ASan/UBSan, and under a tiny descriptor limit."""

from __future__ import annotations

from pathlib import Path

from asan import run_driver, sanitized
from needs import missing

from vfctl.host import vfscan

DRIVER = Path(__file__).parent / "vfscan_driver.py"


def test_built_extension_matches_twin_with_few_descriptors(tmp_path: Path) -> None:
    if vfscan._C_MOD is None:
        missing("the vfctl.host._vfscan extension is not built", "VFCTL_C_EXT")
    run_driver(DRIVER, [str(vfscan._C_MOD.__file__), str(tmp_path), "6"], asan=False)


def test_sanitized_extension_is_clean(tmp_path: Path) -> None:
    run_driver(DRIVER, [sanitized("_vfscan"), str(tmp_path), "6"], asan=True)
