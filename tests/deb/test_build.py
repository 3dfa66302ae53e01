"""`python -m build` gives an sdist and a wheel; without a working C compiler (as without the
Python headers) the build says plainly that vfctl falls back to the pure-Python parser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).parents[2]


def _source(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "vfctl", src / "vfctl", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    return src


def test_build_gives_sdist_and_wheel_with_the_extension(tmp_path: Path) -> None:
    src = _source(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "-o", str(tmp_path / "d"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    sdist = next((tmp_path / "d").glob("vfctl-*.tar.gz"))
    wheel = next((tmp_path / "d").glob("vfctl-*.whl"))
    with tarfile.open(sdist) as t:
        names = t.getnames()
    assert any(n.endswith("vfctl/pci/_configspace.c") for n in names)
    assert any(n.endswith("setup.py") for n in names)
    with zipfile.ZipFile(wheel) as z:
        wnames = z.namelist()
    assert any(n.startswith("vfctl/pci/_configspace") and n.endswith(".so") for n in wnames)
    assert "vfctl/completion.py" in wnames and "vfctl/manpage.py" in wnames


def test_without_a_compiler_the_build_says_it_fell_back(tmp_path: Path) -> None:
    src = _source(tmp_path)
    env = dict(os.environ, CC="false", LDSHARED="false")
    env.pop("VFCTL_REQUIRE_EXT", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "w"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "falling back to the pure-Python parser" in out
    assert "python3-dev gcc" in out
    wheel = next((tmp_path / "w").glob("vfctl-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert not [n for n in z.namelist() if n.endswith(".so")]
