"""One harness for both C extensions under ASan/UBSan: build them sanitized once, run a driver.

tests/pci/test_pci_asan.py (config-space parser) and tests/host/test_vfscan_asan.py (batch VF
reads) each hand their own driver script to ``run_driver``; the build (``setup.py build_ext``
with ``VFCTL_ASAN=1``, which compiles and links both with ``-fsanitize=address,undefined``)
happens once per test process and is shared.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from needs import required

ROOT = Path(__file__).resolve().parents[1]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}


def libasan() -> str:
    """gcc's libasan.so, to LD_PRELOAD into a plain interpreter; skip (or fail in CI) without."""
    out = ""
    if shutil.which("gcc") is not None:
        out = subprocess.run(
            ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
        ).stdout.strip()
    if out and os.path.isabs(out) and os.path.exists(out):
        return out
    if required("VFCTL_ASAN"):
        pytest.fail("gcc with libasan is required for the sanitizer tests")
    pytest.skip("gcc/libasan not available")


@functools.cache
def _build() -> Path:
    lib = Path(tempfile.mkdtemp(prefix="vfctl-asan-"))
    atexit.register(shutil.rmtree, lib, True)
    env = {**os.environ, "VFCTL_ASAN": "1", "VFCTL_REQUIRE_EXT": "1"}
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext",
         "--build-temp", str(lib / "t"), "--build-lib", str(lib / "l")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    return lib / "l"


def sanitized(name: str) -> str:
    """The path of extension ``name`` (``_configspace``, ``_vfscan``, ``_jsonrows``) built with the sanitizers."""
    libasan()  # first: without it the sanitized build could not be run (skip or fail)
    [so] = _build().rglob(f"{name}*.so")
    return str(so)


def load(so: str, name: str) -> ModuleType:
    """Import the extension at path ``so`` as module ``name`` (in a driver's interpreter)."""
    spec = importlib.util.spec_from_file_location(name, so)
    assert spec is not None and spec.loader is not None
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    return ext


def run_driver(driver: Path, args: list[str], *, asan: bool, timeout: int = 600) -> str:
    """Run ``driver`` in a child interpreter (preloading libasan when ``asan``); fail on any
    sanitizer report, a non-zero exit or a mismatch with the Python twin. Returns its output."""
    env = dict(os.environ)
    if asan:
        env.update(SANITIZER_ENV, LD_PRELOAD=libasan())
    run = subprocess.run([sys.executable, str(driver), *args], env=env,
                         capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    report = run.stdout + run.stderr
    assert "AddressSanitizer" not in report and "runtime error" not in report, report[-4000:]
    assert run.returncode == 0 and "0 mismatches" in run.stdout, report[-4000:]
    return report
