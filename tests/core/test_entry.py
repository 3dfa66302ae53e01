"""The lean entry point answers exactly as the typer app does."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from vfctl.cli import app


def test_version_fast_path_prints_what_typer_prints() -> None:
    lean = subprocess.run([sys.executable, "-m", "vfctl", "--version"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    ref = CliRunner().invoke(app, ["--version"])
    assert (lean.returncode, lean.stdout, lean.stderr) == (ref.exit_code, ref.stdout, "")
    assert lean.stdout.startswith("vfctl ")


def test_other_arguments_still_reach_typer() -> None:
    p = subprocess.run([sys.executable, "-m", "vfctl", "--version", "--bogus"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    ref = CliRunner().invoke(app, ["--version", "--bogus"])
    assert (p.returncode, p.stdout) == (ref.exit_code, ref.stdout)
    p = subprocess.run([sys.executable, "-m", "vfctl", "list", "--bogus"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert p.returncode == 2 and "--bogus" in p.stderr
