"""The batch VF reads' C extension under ASan/UBSan, and under a tiny descriptor limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from needs import required

from vfctl.host import vfscan

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).parent / "vfscan_driver.py"


def _libasan() -> str | None:
    if shutil.which("gcc") is None:
        return None
    out = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


def _drive(so: str, work: Path, env: dict[str, str]) -> str:
    run = subprocess.run([sys.executable, str(DRIVER), so, str(work), "6"], env=env,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    report = run.stdout + run.stderr
    assert "AddressSanitizer" not in report and "runtime error" not in report, report[-4000:]
    assert run.returncode == 0 and "0 mismatches" in run.stdout, report[-4000:]
    return report


def test_built_extension_matches_twin_with_few_descriptors(tmp_path: Path) -> None:
    if vfscan._C_MOD is None:
        if required("VFCTL_C_EXT"):
            pytest.fail("the vfctl.host._vfscan extension is required here but not built")
        pytest.skip("C extension not built")
    _drive(str(vfscan._C_MOD.__file__), tmp_path, dict(os.environ))


def test_sanitized_extension_is_clean(tmp_path: Path) -> None:
    libasan = _libasan()
    if libasan is None:
        if required("VFCTL_ASAN"):
            pytest.fail("gcc with libasan is required for the sanitizer test")
        pytest.skip("gcc/libasan not available")
    env = {**os.environ, "VFCTL_ASAN": "1", "VFCTL_REQUIRE_EXT": "1"}
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext",
         "--build-temp", str(tmp_path / "t"), "--build-lib", str(tmp_path / "l")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    [so] = (tmp_path / "l").rglob("_vfscan*.so")
    work = tmp_path / "work"
    work.mkdir()
    _drive(str(so), work, {
        **os.environ,
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
    })  # fmt: skip
