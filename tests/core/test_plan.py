"""The plan/execute engine: journal, rollback in reverse, recover after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from vfctl import plan
from vfctl.errors import HostError
from vfctl.host.open import open_host
from vfctl.host.sysfs import Host
from vfctl.plan import Action, Context, ExecutionFailed, op

LOG: list[str] = []


@op("test.set")
def _set(ctx: Context, p: Mapping[str, Any]) -> None:
    f = ctx.host.path(p["file"])
    if p.get("fail"):
        raise OSError(5, "Input/output error")
    f.write_text(p["value"])
    LOG.append(f"{p['file']}={p['value']}")


def setter(file: str, old: str, new: str, fail: bool = False) -> Action:
    return Action("test.set", file, f"{old} -> {new}", {"file": file, "value": new, "fail": fail},
                  Action("test.set", file, f"{new} -> {old}", {"file": file, "value": old}))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text("0")
    return open_host(tmp_path)


def state(h: Host) -> dict[str, str]:
    return {n: h.path(n).read_text() for n in ("a", "b", "c")}


def test_execute_runs_in_order_and_clears_journal(host: Host) -> None:
    LOG.clear()
    res = plan.execute(Context(host), [setter("a", "0", "1"), setter("b", "0", "2")])
    assert res.changed and LOG == ["a=1", "b=2"]
    assert state(host) == {"a": "1", "b": "2", "c": "0"}
    assert not host.path(plan.JOURNAL).exists()


def test_check_changes_nothing(host: Host) -> None:
    res = plan.execute(Context(host), [setter("a", "0", "1")], check=True)
    assert res.changed and state(host)["a"] == "0"


def test_failure_rolls_back_in_reverse(host: Host) -> None:
    LOG.clear()
    acts = [setter("a", "0", "1"), setter("b", "0", "2"), setter("c", "0", "3", fail=True)]
    with pytest.raises(ExecutionFailed) as ei:
        plan.execute(Context(host), acts)
    assert state(host) == {"a": "0", "b": "0", "c": "0"}
    assert LOG == ["a=1", "b=2", "c=0", "b=0", "a=0"]
    err = ei.value
    assert err.exit_code == 5 and "EIO" in err.message and "rolled back" in err.message
    assert [a.target for a in err.result.rolled_back] == ["c", "b", "a"]
    doc = err.result.to_json()
    assert doc["changed"] is False and doc["error"]["kind"] == "host"


def test_verify_failure_rolls_back(host: Host) -> None:
    def verify() -> None:
        raise HostError("verify failed: a is wrong")

    with pytest.raises(ExecutionFailed, match="verify failed"):
        plan.execute(Context(host), [setter("a", "0", "1")], verify=verify)
    assert state(host)["a"] == "0"


def test_action_records_round_trip() -> None:
    a = setter("a", "0", "1")
    assert Action.from_record(json.loads(json.dumps(a.to_record()))) == a


def test_killed_run_leaves_journal_that_recover_rolls_back(host: Host, tmp_path: Path) -> None:
    # a child process executes two actions then dies (SIGKILL) inside the third
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_plan as t
from vfctl import plan
from vfctl.plan import op
from vfctl.host.open import open_host
@op("test.die")
def _die(ctx, p):
    os.kill(os.getpid(), signal.SIGKILL)
h = open_host({str(tmp_path)!r})
plan.execute(plan.Context(h), [t.setter("a", "0", "1"), t.setter("b", "0", "2"),
    plan.Action("test.die", "c", "boom", {{}}, None)])
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -9
    assert state(host) == {"a": "1", "b": "2", "c": "0"}
    pending = plan.pending_journal(host)
    assert pending is not None and len(pending["actions"]) == 3
    res = plan.recover(Context(host))
    assert state(host) == {"a": "0", "b": "0", "c": "0"}
    assert [a.target for a in res.rolled_back] == ["b", "a"]
    assert plan.pending_journal(host) is None
    assert os.listdir(host.path("run/vfctl")) == []


def test_incomplete_rollback_keeps_journal_for_recover(host: Host) -> None:
    state_ = {"undo_fails": True}

    @op("test.flaky_undo")
    def _flaky(ctx: Context, p: Mapping[str, Any]) -> None:
        if state_["undo_fails"]:
            raise OSError(16, "Device or resource busy")
        ctx.host.path(p["file"]).write_text(p["value"])

    first = Action("test.set", "a", "0 -> 1", {"file": "a", "value": "1"},
                   Action("test.flaky_undo", "a", "1 -> 0", {"file": "a", "value": "0"}))
    with pytest.raises(ExecutionFailed, match=r"ROLLBACK INCOMPLETE.*vfctl recover"):
        plan.execute(Context(host), [first, setter("b", "0", "2", fail=True)])
    assert state(host)["a"] == "1" and plan.pending_journal(host) is not None
    res = plan.recover(Context(host))
    assert res.error is not None and plan.pending_journal(host) is not None  # still failing
    state_["undo_fails"] = False
    res = plan.recover(Context(host))
    assert res.error is None and state(host)["a"] == "0" and plan.pending_journal(host) is None


class _Conn:
    """A stand-in backend: only what the engine looks at (name, params)."""

    def __init__(self, uri: str) -> None:
        self.name = "libvirt"
        self.uri = uri

    def params(self) -> dict[str, Any]:
        return {"uri": self.uri}


def test_context_runs_ops_on_the_instance_that_planned(host: Host) -> None:
    """One instance per connection: ops find the planner's (its pending/warnings), the factory
    makes only the connections nobody brought (``vfctl recover``)."""
    mine = _Conn("qemu:///system")
    made: list[str] = []

    def factory(name: str, params: Mapping[str, Any]) -> Any:
        made.append(params["uri"])
        return _Conn(params["uri"])

    ctx = Context(host, backend_factory=factory, backends=[mine])  # type: ignore[list-item]
    assert ctx.backend("libvirt", {"uri": "qemu:///system"}) is mine
    other = ctx.backend("libvirt", {"uri": "qemu+ssh://h/system"})
    assert other is not mine and made == ["qemu+ssh://h/system"]
    assert ctx.backend("libvirt", {"uri": "qemu+ssh://h/system"}) is other  # made once
