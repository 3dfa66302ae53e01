"""Build the extension with -fsanitize=address,undefined and run it over thousands of inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from needs import required

ROOT = Path(__file__).resolve().parents[2]


def _libasan() -> str | None:
    if shutil.which("gcc") is None:
        return None
    out = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


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
    [so] = (tmp_path / "l").rglob("_configspace*.so")
    work = tmp_path / "work"
    work.mkdir()
    run_env = {
        **os.environ,
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
    }
    run = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "asan_driver.py"), str(so), str(work), "3000"],
        env=run_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert "AddressSanitizer" not in report and "runtime error" not in report, report[-4000:]
    assert run.returncode == 0, report[-4000:]
    assert "0 mismatches" in run.stdout
