"""With a backend: the lean entry point's list/show --json equal the typer commands' output.

The simulated PVE host (auto-detected: no --backend) against the fake cluster, a VF attached
to vm101, both real paths as separate processes (see tests/host/test_fastpath.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pvecli import PF, Pve

from vfctl import entry

VF1 = "0000:01:10.2"
LEAN = [sys.executable, "-m", "vfctl"]
TYPER = [sys.executable, "-c", "from vfctl.cli import main; main()"]


def test_list_and_show_json_with_proxmox(pve: Pve) -> None:
    assert pve("attach", "101", PF, "vf1", "--json").code == 0
    env = dict(os.environ)
    for k, v in pve.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    base = ["--root", str(pve.root), *pve.flags]
    for args in (["list", "--json"], ["list", "--all", "--json"], ["show", PF, "--json"]):
        assert entry.parse([*base, *args]) is not None  # the lean path takes it
        lean, typer = (
            subprocess.run([*how, *base, *args], capture_output=True, text=True, env=env,
                           check=False)
            for how in (LEAN, TYPER)
        )
        assert (lean.returncode, lean.stdout, lean.stderr) == (
            typer.returncode, typer.stdout, typer.stderr,
        )  # fmt: skip
        assert lean.returncode == 0, lean.stderr
        doc = json.loads(lean.stdout)
        pfs = doc.get("pfs", [doc])
        vf = next(v for p in pfs for v in p["vfs"] if v["address"] == VF1)
        assert [a["vm"] for a in vf["attached_to"]] == ["vm101"]
