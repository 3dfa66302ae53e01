"""The lean entry point answers exactly as the typer app does."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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


def _gen() -> Any:
    """scripts/gen-helptext.py as a module (it renders typer's help in a child process)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen-helptext.py"
    spec = importlib.util.spec_from_file_location("gen_helptext", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cached_help_is_what_typer_renders_now() -> None:
    gen = _gen()
    assert gen.render() == gen.OUT.read_text(), "stale: run scripts/gen-helptext.py"


@pytest.mark.parametrize("columns", ["", "80", "200", "79", "60"])
@pytest.mark.parametrize("how", ["module", "script"])
def test_help_fast_path_prints_what_typer_prints(columns: str, how: str) -> None:
    gen = _gen()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    if how == "module":
        argv, prog = [sys.executable, "-m", "vfctl"], "python -m vfctl"
    else:
        argv, prog = [str(Path(sys.executable).parent / "vfctl")], "vfctl"
        if not Path(argv[0]).exists():
            pytest.skip("no vfctl script next to this interpreter")
    for flag in ("--help", "-h"):
        lean = subprocess.run([*argv, flag], capture_output=True, text=True, env=env,
                              check=False)  # fmt: skip
        rc, out = gen.typer_help(prog, columns or "80")
        assert (lean.returncode, lean.stdout, lean.stderr) == (rc, out, "")
        assert out.startswith(f"Usage: {prog} [OPTIONS]")
