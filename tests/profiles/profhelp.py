"""Helpers for the profile tests: simulated hosts, an in-process vfctl runner, write counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clirun import Run
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
VFCTL = str(Path(sys.executable).with_name("vfctl"))


def vfctl(root: Path | None, *args: str, input: str | None = None) -> Run:
    """One vfctl invocation in this process (fast); each has its own session (no cached backend)."""
    from vfctl import cli

    pre = ["--root", str(root)] if root is not None else []
    r = CliRunner().invoke(cli.app, [*pre, *args], input=input, catch_exceptions=False)
    return Run(r.exit_code, r.stdout, r.stderr)


def make_sim(dir: Path, preset: str) -> Path:
    from vfctl import sim

    sim.init(dir, preset)
    return dir


def writes(root: Path) -> list[str]:
    p = root / ".vfctl-sim" / "writes.log"
    return p.read_text().splitlines() if p.exists() else []


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """vfctl as a real process (the console script of this venv)."""
    return subprocess.run(
        [VFCTL, *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
