"""The real CLI on a simulated PVE host against the fake PVE, in both connection modes.

Shared by the CLI test modules through conftest: ``token`` (API token over HTTPS, vfctl
must use cluster mappings) and ``root`` (the fake ``pvesh`` as root@pam, raw ``host=``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirun import Run
from fakepve import FakePve, Server
from needs import missing
from typer.testing import CliRunner

from vfctl import cli, sim

NODE = "pve1"
TOKEN_USER = "vfctl@pve"
TOKEN_NAME = "ci"
TOKEN_SECRET = "3f2a9c1e-7d44-4b8e-9a51-0c6a2b7e9d10"
PF = "enp1s0f0"
PF_ADDR = "0000:01:00.0"
WRITES = ("POST", "PUT", "DELETE")


# ---------------------------------------------------------------- the simulated host


@pytest.fixture(scope="session")
def _pve_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-preset host with 4 VFs on enp1s0f0 (enabled through the CLI), marked as PVE."""
    root = tmp_path_factory.mktemp("pve-sim") / "host"
    sim.init(root, "default")
    r = CliRunner().invoke(cli.app, ["--root", str(root), "--backend", "none", "enable", PF, "4"])
    assert r.exit_code == 0, r.output
    (root / "etc/pve").mkdir(parents=True)
    return root


@pytest.fixture
def simroot(tmp_path: Path, _pve_template: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(_pve_template, root, symlinks=True)
    return root


# ---------------------------------------------------------------- the two connection modes


@dataclass
class Pve:
    """One way of reaching the fake cluster, and a runner for vfctl through it."""

    mode: str  # "token" | "root"
    fake: FakePve
    root: Path
    env: dict[str, str | None]
    flags: list[str]

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Run:
        full_env = {**self.env, **(env or {})}
        r = CliRunner().invoke(
            cli.app, ["--root", str(self.root), *self.flags, *args], env=full_env
        )
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        run = Run(r.exit_code, r.stdout, r.stderr)
        assert_no_secret(run.out, run.err)
        return run

    # -- reading the cluster back --
    def config(self, vmid: int, pending: bool = True) -> dict[str, Any]:
        v = self.fake.read()["vms"][str(vmid)]
        cfg = dict(v["config"])
        if pending:
            cfg.update(v["pending"])
            for k in v["pending_delete"]:
                cfg.pop(k, None)
        return cfg

    def hostpci(self, vmid: int, pending: bool = True) -> dict[str, str]:
        return {k: v for k, v in self.config(vmid, pending).items() if k.startswith("hostpci")}

    def mappings(self) -> dict[str, Any]:
        return dict(self.fake.read()["mappings"])

    def log_len(self) -> int:
        return len(self.fake.read()["log"])

    def writes_since(self, n: int) -> list[dict[str, Any]]:
        return [e for e in self.fake.read()["log"][n:] if e["method"] in WRITES]

    def expected_value(self, addr: str, mid: str, extra: str = ",pcie=1") -> str:
        return (f"host={addr}" if self.mode == "root" else f"mapping={mid}") + extra


def assert_no_secret(*texts: str) -> None:
    for t in texts:
        assert TOKEN_SECRET not in t


def _clean_env() -> dict[str, str | None]:
    """Unset every VFCTL_* the outer environment may carry; the fixtures set what they need."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VFCTL_")}
    env["VFCTL_PVE_NODE"] = NODE
    return env


def _need_root() -> None:
    if os.geteuid() != 0:
        missing("the pvesh (root@pam) mode needs root")


@pytest.fixture
def token_pve(fake: FakePve, server: Server, tls: Any, simroot: Path) -> Pve:
    env = _clean_env()
    env.update(
        VFCTL_PVE_HOST=f"127.0.0.1:{server.port}",
        VFCTL_PVE_USER=TOKEN_USER,
        VFCTL_PVE_TOKEN_NAME=TOKEN_NAME,
        VFCTL_PVE_TOKEN_VALUE=TOKEN_SECRET,
    )
    return Pve("token", fake, simroot, env, ["--pve-ca", tls.ca])


@pytest.fixture
def root_pve(fake: FakePve, pvesh: Path, simroot: Path) -> Pve:
    _need_root()
    return Pve("root", fake, simroot, _clean_env(), [])


@pytest.fixture(params=["token", "root"])
def pve(request: pytest.FixtureRequest) -> Pve:
    return request.getfixturevalue(f"{request.param}_pve")  # type: ignore[no-any-return]
