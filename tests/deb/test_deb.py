"""The Debian package, proven on clean systems: built inside a bookworm (PVE 8) and a trixie
(PVE 9) chroot, installed with apt into a fresh minimal chroot of the same suite (dependencies
from Debian: typer 0.7.0/rich 13.3/pyroute2 0.7.2 on bookworm), then run there
(scripts/deb-smoke.sh: --version, sim init, list --json, apply of a shipped example, man -w,
bash completion). Chroots are cached as tarballs in ~/.cache/vfctl-deb (VFCTL_DEB_CACHE).

Needs root, debootstrap and the Debian registry: elsewhere it skips, in CI it must run."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from needs import missing

REPO = Path(__file__).parents[2]


def _ready() -> None:
    if os.geteuid() != 0:
        missing("building in and installing into chroots needs root", "VFCTL_DEB")
    for tool in ("debootstrap", "dpkg-buildpackage", "chroot"):
        if shutil.which(tool) is None:
            missing(f"{tool} is missing (deps/apt-deb.txt)", "VFCTL_DEB")


SUITES = ("bookworm", "trixie")


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Both suites at once: most of the time is downloads, unpacking and dpkg, which overlap."""
    _ready()
    procs = {
        s: subprocess.Popen(
            ["scripts/deb.sh", "test", s],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in SUITES
    }
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("suite", SUITES)
def test_deb_installs_and_runs_on_a_clean_system(
    suite: str, runs: dict[str, subprocess.Popen[str]]
) -> None:
    out, err = runs[suite].communicate(timeout=1800)
    r = subprocess.CompletedProcess(runs[suite].args, runs[suite].returncode, out, err)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    checks = [ln for ln in r.stdout.splitlines() if ln.startswith("ok: ")]
    for want in (
        "--version",
        "C config-space parser",
        "list --json",
        "apply ",
        "man -w vfctl",
        "vfctl en<TAB> -> enable",
        "show enp1<TAB>",
    ):
        assert any(want in c for c in checks), (want, r.stdout)
    assert "deb-smoke: all checks passed" in r.stdout
    deb = next((REPO / "dist" / suite).glob("vfctl_*_amd64.deb"))
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True)
    for dep in ("python3-typer", "python3-rich", "python3-yaml", "python3-pyroute2"):
        assert dep in info.stdout


@pytest.mark.parametrize("suite", SUITES)
def test_deb_lintian_clean_of_errors(suite: str, runs: dict[str, subprocess.Popen[str]]) -> None:
    """lintian on the suite's deb (built above): no errors; its file list is complete."""
    if shutil.which("lintian") is None:
        missing("lintian is missing (deps/apt-deb.txt)", "VFCTL_DEB")
    runs[suite].wait(timeout=1800)
    deb = str(next((REPO / "dist" / suite).glob("vfctl_*_amd64.deb")))
    lint = subprocess.run(
        ["lintian", "--fail-on", "error", deb], capture_output=True, text=True, timeout=600
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for path in (
        "./usr/bin/vfctl",
        "./usr/share/man/man8/vfctl.8.gz",
        "./usr/share/man/man8/vfctl-set.8.gz",
        "./usr/share/bash-completion/completions/vfctl",
        "./usr/share/zsh/vendor-completions/_vfctl",
        "./usr/share/fish/vendor_completions.d/vfctl.fish",
        "./usr/share/vfctl/profiles/schema.json",
        "./usr/share/doc/vfctl/copyright",
        "./usr/lib/systemd/system/vfctl.service",
    ):
        assert path in listing, path
    assert "_configspace.cpython-3" in listing  # the C extension was compiled, not skipped
