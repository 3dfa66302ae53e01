"""Run vfctl as a separate process under resource limits: memory and CPU, never wall time."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from clirun import Run

MEM_LIMIT = 400 << 20  # address space: the interpreter alone maps ~60 MB here
CPU_SECONDS = 10  # CPU time, not wall time: a loaded CI machine does not make it flaky
MAX_RSS_KB = 100 << 10  # issue 11: a bad profile costs at most 100 MB
_RSS = "hard-maxrss-kb="
# the child reports its own peak RSS at exit (RUSAGE_CHILDREN would mix in every other child)
_WRAP = (
    "import atexit, os, resource, sys\n"
    "atexit.register(lambda: os.write(2, ('\\n" + _RSS + "%d\\n' % "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).encode()))\n"
    "sys.argv[0] = 'vfctl'\n"
    "from vfctl.entry import main\n"
    "main()\n"
)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def vfctl(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    root: Path | None = None,
    limits: bool = True,
    timeout: float = 120,
) -> Run:
    """vfctl in a child process; a hang or a resource overrun fails the test, not the machine."""
    full = {**os.environ, **(env or {})}
    pre = ["--root", str(root)] if root is not None else []
    p = subprocess.run(
        [sys.executable, "-c", _WRAP, *pre, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=full,
        preexec_fn=_limits if limits else None,
        timeout=timeout,
        check=False,
    )
    err = p.stderr.decode(errors="replace")
    head, sep, tail = err.rpartition("\n" + _RSS)
    if sep:
        rss = int(tail.strip())
        err = head
        assert rss < MAX_RSS_KB, f"peak RSS {rss} KB (limit {MAX_RSS_KB} KB)"
    return Run(p.returncode, p.stdout.decode(errors="replace"), err)


def cli(root: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Run:
    """vfctl in-process (typer's runner) on a host root, as an admin would type it."""
    from typer.testing import CliRunner

    from vfctl.cli import app

    r = CliRunner().invoke(app, ["--root", str(root), *args], env=env, input=stdin)
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Run(r.exit_code, r.stdout, r.stderr)
