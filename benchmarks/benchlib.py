"""Shared by the end-to-end benchmarks: timed child runs, medians, verdict lines.

Each run is a child process measured by spawn.c (wait4 in a small parent): wall time, CPU
time (user + system, the child's own) and peak RSS. On this shared 2-core machine wall time mostly measures the
queue for a CPU, so ratios are taken on CPU time, with the candidate and its baseline run
alternately in the same loop (both see the same load) and the median of each reported.
"""

from __future__ import annotations

import os
import site
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of measured children: bytecode caches allowed, as an installed package
    has them (PYTHONDONTWRITEBYTECODE would make every run compile vfctl from source)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    rss_mb: float


def _spawner() -> str:
    """spawn.c, compiled on first use into .bench/ (see that file for why it exists)."""
    exe = ROOT / ".bench" / "spawn"
    src = ROOT / "benchmarks" / "spawn.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        exe.parent.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return str(exe)


def installed() -> tuple[str, str]:
    """(python, vfctl): an interpreter that imports vfctl as an installed package is imported,
    and the ``vfctl`` command an install makes for it (pip's console script, as in the dev
    venv; pybuild makes the .deb's /usr/bin/vfctl the same way): what a user runs.

    The dev venv's editable install puts a finder on every start (its .pth imports pathlib,
    importlib.util … : ~12 ms of site, paid by no installed vfctl, the .deb's included). This
    venv has ``vfctl`` in its own site-packages (a link to this tree: what is measured is the
    tree) and reaches the dev venv's packages (typer, rich …) by a plain path line in a .pth,
    which site appends without importing anything, as it does for any installed dependency.
    """
    venv = ROOT / ".bench" / "venv-installed"
    py = venv / "bin" / "python"
    if not py.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    pkgs = Path(subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    link, tree = pkgs / "vfctl", ROOT / "vfctl"
    if not link.is_symlink() or Path(os.readlink(link)) != tree:  # .bench copied from elsewhere
        link.unlink(missing_ok=True)  # a link to another tree would measure that tree
        link.symlink_to(tree)
    deps = "".join(f"{p}\n" for p in site.getsitepackages())  # the dev venv's packages
    pth = pkgs / "dev-venv-packages.pth"
    if not pth.exists() or pth.read_text() != deps:
        pth.write_text(deps)
    script = venv / "bin" / "vfctl"
    dev_script = Path(sys.executable).parent / "vfctl"  # pip's console script for the dev venv
    body = dev_script.read_text().split("\n", 1)[1]
    if not script.exists() or script.read_text() != f"#!{py}\n{body}":
        script.write_text(f"#!{py}\n{body}")
        script.chmod(0o755)
    return str(py), str(script)


def run(cmd: Sequence[str], env: dict[str, str] | None = None) -> Sample:
    """One run of ``cmd`` (stdout discarded) in .bench/ (``-m vfctl`` never finds the tree
    through the working directory); raises when it fails."""
    r, w = os.pipe()
    t = time.perf_counter()
    p = subprocess.Popen([_spawner(), str(w), *cmd], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, pass_fds=(w,), cwd=ROOT / ".bench")  # fmt: skip
    os.close(w)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.wait()
    wall = (time.perf_counter() - t) * 1000
    with os.fdopen(r) as f:
        line = f.read().split()
    if p.stderr:
        p.stderr.close()
    if len(line) != 4 or line[3] != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed ({line}): {err.strip()[:400]}")
    utime, stime, rss = int(line[0]), int(line[1]), int(line[2])
    return Sample(wall, (utime + stime) / 1000, rss / 1024)


@dataclass
class Pair:
    base: list[Sample]
    cand: list[Sample]

    def med(self, which: str, attr: str = "cpu_ms") -> float:
        return statistics.median(getattr(s, attr) for s in getattr(self, which))

    def ratios(self) -> list[float]:
        """base / candidate CPU of each pair, sorted: the two ran back to back, under the
        same load, so a pair's ratio is steadier than a ratio of two medians."""
        return sorted(b.cpu_ms / c.cpu_ms for b, c in zip(self.base, self.cand, strict=True))


def pair(
    base: Sequence[str], cand: Sequence[str], env: dict[str, str] | None, n: int
) -> Pair:
    """Baseline and candidate, alternately, ``n`` times each (after one warm-up of each)."""
    run(base, env)
    run(cand, env)
    out = Pair([], [])
    for _ in range(n):
        out.base.append(run(base, env))
        out.cand.append(run(cand, env))
    return out


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def row(label: str, value: str, target: str, ok: bool) -> None:
    print(f"  {label:<44} {value:<34} target {target:<12} {verdict(ok)}")
