"""One session per command: discoveries counted per command (1 read-only, 2 mutating).

Before the session, `enable` discovered three times (plan, verify_numvfs, the history
record) and each caller kept its own backend cache; these tests count the calls of
``vfctl.discover.discover`` made by one in-process invocation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import Run, counting
from typer.testing import CliRunner

from vfctl import sim
from vfctl.cli import app
from vfctl.session import Options, Session

PF = "enp1s0f0"
PROFILE = """\
version: 1
pfs:
  - match: {netdev: enp1s0f0}
    total-vfs: 4
    vfs:
      - {id: 1, vlan-id: 12}
"""


def run(root: Path, *args: str) -> tuple[Run, int]:
    with counting("vfctl.discover", "discover") as n:
        r = CliRunner().invoke(app, ["--root", str(root), "--backend", "none", *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Run(r.exit_code, r.stdout, r.stderr), n.calls


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "host"
    sim.init(r, "default")
    return r


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("show", PF), ("show", PF, "--json"), ("doctor", "--json")],
)
def test_a_read_only_command_discovers_once(root: Path, args: tuple[str, ...]) -> None:
    res, n = run(root, *args)
    assert res.code in (0, 5), res.err  # doctor: 5 when a check fails on the simulated host
    assert n == 1


@pytest.mark.parametrize(
    "args",
    [
        ("enable", PF, "2"),
        ("enable", PF, "4"),  # a no-op is recorded too: plan + the history's "after"
        ("set", PF, "vf1", "--vlan", "7"),
        ("bind", PF, "vf2"),
        ("unbind", PF, "vf2"),
        ("disable", PF, "--force"),
    ],
)
def test_a_mutating_command_discovers_twice(root: Path, args: tuple[str, ...]) -> None:
    assert run(root, "enable", PF, "4")[0].code == 0
    res, n = run(root, *args, "--json")
    assert res.code == 0, res.err
    assert res.json()["error"] is None
    assert n == 2  # plan, then verify; the history record reuses the verify model


def test_check_discovers_once(root: Path) -> None:
    res, n = run(root, "enable", PF, "4", "--check", "--json")
    assert res.code == 0 and res.json()["changed"] is True
    assert n == 1


def test_apply_discovers_twice_and_records_the_verify_model(root: Path, tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(PROFILE)
    res, n = run(root, "apply", "--json", str(prof))
    assert res.code == 0, res.err
    assert res.json()["changed"] is True
    assert n == 2
    hist, _ = run(root, "history", "show", "last", "--json")
    keys = {k["name"]: k["after"] for k in hist.json()["keys"]}
    assert keys["0000:01:00.0 num_vfs"] == 4  # the "after" values came from that model
    assert keys["0000:01:00.0 vf1 vlan"] == 12


def test_a_failed_verify_rolls_back_and_records_a_fresh_model(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rollback the verify model is stale: the record reads the host again."""
    from vfctl import plan_host
    from vfctl.errors import HostError

    def never(new: object, address: str, n: int) -> None:
        raise HostError(f"{address}: verify failed (test)")

    monkeypatch.setattr(plan_host, "verify_numvfs", never)
    res, n = run(root, "enable", PF, "4", "--json")
    assert res.code == 5 and res.json()["rolled_back"]
    # plan, verify, the engine's check that the rollback gave the host back, and the record's
    # re-read (the verify model no longer describes the host)
    assert n == 4
    hist, _ = run(root, "history", "show", "last", "--json")
    keys = {k["name"]: k for k in hist.json()["keys"]}
    assert "0000:01:00.0 num_vfs" not in keys  # rolled back: 0 before and after


def test_a_session_is_built_from_plain_values(root: Path) -> None:
    """No typer needed (the fast path builds one): options in, a model out, cached."""
    s = Session(Options(root=str(root), backend="none"))
    with counting("vfctl.discover", "discover") as n:
        m1 = s.model(lenient=True)
        m2 = s.model(lenient=True)
        s.model(lenient=False)  # a strict model is not served by a lenient one
    assert m1 is m2 and n.calls == 2
    assert [p.netdev for p in m1.pfs][:1] == [PF]
    assert Session(root=str(root)).opts.root == str(root)


def test_a_vm_manager_failing_after_the_run_costs_the_record_not_the_run(root: Path) -> None:
    """The verify model falls back to the host's own view; the record notes what it missed."""
    from vfctl import plan_host, runflow
    from vfctl.discover import resolve_pf
    from vfctl.errors import BackendError

    s = Session(Options(root=str(root), backend="none"))
    calls = []
    real = s.inventory

    def inventory(lenient: bool = False) -> dict[str, list[object]]:
        calls.append(lenient)
        if len(calls) > 1:
            raise BackendError("the VM manager went away")
        return real(lenient)

    s.inventory = inventory  # type: ignore[method-assign]

    def build(m: object) -> tuple[list[object], object]:
        p = resolve_pf(m, PF, s.host())  # type: ignore[arg-type]
        acts = plan_host.plan_numvfs(m, p, 2)  # type: ignore[arg-type]
        return acts, lambda new: plan_host.verify_numvfs(new, p.address, 2)

    with counting("vfctl.discover", "discover") as n:
        res = runflow.run(s, build, check=False, wait=5.0)  # type: ignore[arg-type]
    assert res.changed and res.error is None
    assert n.calls == 2  # plan; verify (without the VM managers' view) once the inventory failed
    assert any("host not re-read after the run" in w for w in res.warnings), res.warnings
    assert (root / "sys/bus/pci/devices/0000:01:00.0/sriov_numvfs").read_text().strip() == "2"


def test_the_session_layer_imports_no_typer_and_no_rich() -> None:
    """The lean read path builds a Session without the CLI; rich only when a table is drawn."""
    import subprocess
    import sys

    code = (
        "import sys, vfctl.session, vfctl.runflow, vfctl.render\n"
        "print(sorted(m for m in ('typer', 'rich', 'vfctl.cli', 'vfctl.cli_app') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_undo_discovers_twice(root: Path) -> None:
    """undo plans from the model it checks drift on and verifies on the re-discovered one."""
    assert run(root, "enable", PF, "4")[0].code == 0
    res, n = run(root, "undo", "last", "--json")
    assert res.code == 0, res.err
    assert res.json()["changed"] is True and res.json()["error"] is None
    assert n == 2
    assert (root / "sys/bus/pci/devices/0000:01:00.0/sriov_numvfs").read_text().strip() == "0"
