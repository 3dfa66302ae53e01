"""Helpers for CLI tests on simulated hosts: run vfctl as an admin would, read the result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clirun import Run
from typer.testing import CliRunner

from vfctl import sim
from vfctl.cli import app


class SimHost:
    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str) -> Run:
        r = CliRunner().invoke(app, ["--root", str(self.root), "--backend", "none", *args])
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Run(r.exit_code, r.stdout, r.stderr)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists() or (self.root / rel).is_symlink()

    def writes(self) -> list[str]:
        log = self.root / ".vfctl-sim" / "writes.log"
        return log.read_text().splitlines() if log.exists() else []

    def dev(self, addr: str, attr: str = "") -> str:
        return f"sys/bus/pci/devices/{addr}" + (f"/{attr}" if attr else "")

    def driver(self, addr: str) -> str | None:
        p = self.root / self.dev(addr, "driver")
        return Path(p.readlink()).name if p.is_symlink() else None

    def edit_state(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with sim.locked(self.root) as st:
            fn(st)

    def faults(self, rules: list[dict[str, Any]]) -> None:
        (self.root / ".vfctl-sim" / "faults.json").write_text(json.dumps(rules))

    def snapshot_state(self) -> dict[str, Any]:
        """What must be identical after a rolled-back failure: devices, drivers, links."""
        doc = self("list", "--json").json()
        for pf in doc["pfs"]:
            for vf in pf["vfs"]:
                vf.pop("mac", None)  # re-created VFs get fresh MACs, as on real NICs
        devs = sorted(p.name for p in (self.root / "sys/bus/pci/devices").iterdir())
        return {"list": doc, "devices": devs, "drivers": {d: self.driver(d) for d in devs}}


def pf_by_driver(h: SimHost, driver: str) -> dict[str, Any]:
    pfs: list[dict[str, Any]] = h("list", "--json").json()["pfs"]
    return next(p for p in pfs if p["driver"] == driver)
