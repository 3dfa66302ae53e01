"""The lean entry point's list/show --json print what the typer commands print, byte for byte.

Both run vfctl.readjson on a Session; these tests run the two real paths as separate
processes (``python -m vfctl`` takes the lean path, ``vfctl.cli.main`` is typer's) on
simulated hosts and compare stdout, stderr and the exit code. With a backend: tests/pve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl import entry

NewHost = Callable[..., SimHost]
LEAN = [sys.executable, "-m", "vfctl"]
TYPER = [sys.executable, "-c", "from vfctl.cli import main; main()"]


def both(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``args`` both ways; assert they agree; return the lean path's (code, out, err)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("VFCTL_")}
    full.update(env or {})
    runs = [subprocess.run([*how, *args], capture_output=True, text=True, env=full, check=False)
            for how in (LEAN, TYPER)]  # fmt: skip
    lean, typer = ((r.returncode, r.stdout, r.stderr) for r in runs)
    assert lean == typer, args
    return lean


def _busy(h: SimHost) -> None:
    for pf in h("list", "--json").json()["pfs"]:
        name = pf["address"]
        assert h("enable", name, str(min(pf["total_vfs"], 5))).code == 0
        assert h("bind", name, "vf0-1").code == 0
        if pf["netdev"]:
            assert h("set", name, "vf2", "--vlan", "9", "--mac", "02:00:00:00:00:09").code == 0


@pytest.mark.parametrize("preset", ["default", "minimal", "lab"])
def test_list_and_show_json_on_simulated_hosts(new_host: NewHost, preset: str) -> None:
    h = new_host(f"fastpath-{preset}", preset, _busy)
    root = str(h.root)
    code, out, _ = both(["--root", root, "--backend", "none", "list", "--json"])
    pfs = json.loads(out)["pfs"]
    assert code == 0 and pfs and any(p["vfs"] for p in pfs)
    env = {"VFCTL_ROOT": root, "VFCTL_BACKEND": "none"}
    for args in (["list", "--all", "--json"], ["list", "--json", "-a"], ["list", "--json"]):
        assert both(args, env)[1] == out
    pf = pfs[0]
    for name in {pf["address"], pf["netdev"] or pf["address"]}:
        for args in (["show", name, "--json"], ["show", "--json", name]):
            code, text, _ = both([f"--root={root}", "--backend=none", *args])
            assert code == 0 and json.loads(text)["address"] == pf["address"]


def test_errors_and_warnings_match(new_host: NewHost, tmp_path: Path) -> None:
    h = new_host("fastpath-default", "default", _busy)
    root = str(h.root)
    code, out, err = both(["--root", root, "--backend", "none", "show", "nope", "--json"])
    assert code == 3 and json.loads(out)["error"]["kind"] == "not-found" and "nope" in err
    code, out, err = both(["--root", str(tmp_path / "absent"), "list", "--json"])
    assert code == 3 and "does not exist" in err
    # garbage the kernel reports: a warning on stderr, the PF's problems in the document
    pf = h("list", "--json").json()["pfs"][1]["address"]
    (h.root / h.dev(pf, "sriov_totalvfs")).write_text("-5\n")
    code, out, err = both(["--root", root, "--backend", "none", "list", "--json"])
    assert code == 0 and "sriov_totalvfs" in err
    assert next(p["problems"] for p in json.loads(out)["pfs"] if p["address"] == pf)


def test_what_the_lean_path_takes_and_leaves() -> None:
    assert entry.parse(["--root", "/x", "list", "--json"]) is not None
    assert entry.parse(["-v", "--insecure", "--pve-ca", "/ca", "show", "eth0", "--json"])
    for odd in (
        ["list"],  # a table: typer and rich
        ["list", "--json", "--json"],
        ["list", "--json", "--bogus"],
        ["--root", "--json", "list", "--json"],
        ["--root", "/a", "--root", "/b", "list", "--json"],
        ["-vv", "list", "--json"],
        ["show", "--json"],
        ["show", "a", "b", "--json"],
        ["show", "-", "--json"],
        ["list", "--json", "--help"],
        ["list", "--", "--json"],
        ["enable", "eth0", "2", "--json"],
    ):
        assert entry.parse(odd) is None, odd


# what the lean path must not import: typer and rich (~45 ms), and the standard modules
# whose import costs more than a typical host's whole listing (benchmarks/README.md, sixth
# round: re with enum/functools/collections ~26 M instructions, pathlib ~18 M, json ~5 M)
HEAVY = ("typer", "rich", "typing", "re", "enum", "functools", "collections", "pathlib", "json",
         "contextlib", "importlib", "dataclasses", "inspect")  # fmt: skip


@pytest.mark.parametrize("args", [["list", "--json"], ["show", "0000:01:00.0", "--json"]])
def test_the_lean_path_imports_nothing_heavy(new_host: NewHost, args: list[str]) -> None:
    """Run without site (``-S``: a dev venv's editable finder loads pathlib and re at start-up,
    an installed vfctl's start-up does not), vfctl from this tree, against what start-up loaded."""
    h = new_host("fastpath-default", "default", _busy)
    code = (
        "import sys; before = set(sys.modules)\n"
        f"sys.argv = ['vfctl', *{args!r}]\n"
        "from vfctl import entry\n"
        "try:\n    entry.main()\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(set(sys.modules) - before)), file=sys.stderr)\n"
    )
    tree = str(Path(entry.__file__).parents[1])
    env = {**os.environ, "VFCTL_ROOT": str(h.root), "VFCTL_BACKEND": "none", "PYTHONPATH": tree}
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       env=env, check=False)  # fmt: skip
    loaded = set(p.stderr.strip().splitlines()[-1].split())
    assert "vfctl.discover" in loaded  # it ran the lean path
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY), sorted(loaded)
    doc = json.loads(p.stdout)
    assert doc["pfs"] if args[0] == "list" else doc["vfs"]
