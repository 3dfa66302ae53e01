"""The simulator survives kill -9 anywhere in a write: state and tree never disagree.

A crash test of vfctl must test vfctl, not the simulator. Each point forks a child that
performs one simulated write and dies (``os._exit``, no cleanup, as SIGKILL) at the k-th file
operation of the simulator; the parent then opens the host as vfctl would. The tree and the
saved state must then be exactly the ones before the write, or exactly the ones after an
uninterrupted write — never a mixture.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vfctl import sim
from vfctl.host.open import open_host
from vfctl.sim import state as simstate
from vfctl.sim import tree as simtree

PF = "sys/bus/pci/devices/0000:01:00.0"  # minimal preset: one igb PF, 7 VFs
VF0 = "0000:01:10.0"
# every file operation of the simulator: tree changes (vfctl.sim.tree) and state saves
_HOOKED = [(simtree, n) for n in ("put", "link", "rm", "atomic_write")] + [(simstate, "save")]

Op = Callable[[Path], None]


def _enable(root: Path) -> None:
    sim.write(root, f"{PF}/sriov_numvfs", "3")


def _disable(root: Path) -> None:
    sim.write(root, f"{PF}/sriov_numvfs", "0")


def _enable_override(root: Path) -> None:
    _enable(root)
    sim.write(root, f"sys/bus/pci/devices/{VF0}/driver_override", "vfio-pci")


def _unbind(root: Path) -> None:
    sim.write(root, "sys/bus/pci/drivers/igbvf/unbind", VF0)


OPS: dict[str, tuple[Op | None, Op]] = {  # name: (setup, the write that is killed)
    "enable": (None, _enable),
    "disable": (_enable, _disable),
    "unbind": (_enable_override, _unbind),
}


def tree(root: Path) -> dict[str, Any]:
    """Every file's bytes and every link's target under the host root, plus the saved state."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel.split(os.sep)[0] == sim.MARKER:
            continue
        for name in dirs + files:
            p = Path(d) / name
            key = os.path.join(rel, name)
            if p.is_symlink():
                out[key] = "-> " + os.readlink(p)
            elif p.is_file():
                out[key] = p.read_bytes()
            else:
                out[key] = "dir"
    st = json.loads((root / sim.MARKER / "state.json").read_text())
    st.pop("_fp", None)
    st.pop("fault_counts", None)
    out["<state>"] = st
    return out


def _count_calls(root: Path, op: Op, monkeypatch: pytest.MonkeyPatch) -> int:
    n = [0]
    for mod, name in _HOOKED:
        real = getattr(mod, name)

        def hooked(*a: Any, _real: Any = real, **kw: Any) -> Any:
            n[0] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(mod, name, hooked)
    op(root)
    monkeypatch.undo()
    return n[0]


def _killed_at(root: Path, op: Op, k: int) -> None:
    """Run ``op`` in a child that dies without any cleanup at its k-th file operation."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            n = [0]
            for mod, name in _HOOKED:
                real = getattr(mod, name)

                def hooked(*a: Any, _real: Any = real, **kw: Any) -> Any:
                    n[0] += 1
                    if n[0] == k:
                        os._exit(9)
                    return _real(*a, **kw)

                setattr(mod, name, hooked)
            op(root)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)


@pytest.mark.parametrize("name", sorted(OPS))
def test_kill_anywhere_leaves_before_or_after(
    name: str, make_host: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, op = OPS[name]
    base = make_host("minimal")
    if setup is not None:
        setup(base)
    before = tree(base)
    done = tmp_path / "done"
    shutil.copytree(base, done, symlinks=True)
    calls = _count_calls(done, op, monkeypatch)
    after = tree(done)
    assert before != after and calls > 10
    # a dozen points spread over every file operation of the write, the last ones included
    points = sorted({*range(1, calls + 1, max(1, calls // 12)), calls - 1, calls})
    mixed = []
    for k in points:
        root = tmp_path / f"k{k}"
        shutil.copytree(base, root, symlinks=True)
        _killed_at(root, op, k)
        open_host(root)  # what every vfctl run does first
        got = tree(root)
        if got != before and got != after:
            diff = sorted(x for x in set(got) | set(after) if got.get(x) != after.get(x))
            mixed.append((k, diff[:5]))
        shutil.rmtree(root)
    assert not mixed, f"{len(mixed)}/{len(points)} kill points left state and tree apart: {mixed}"


def test_next_write_after_a_kill_sees_the_finished_tree(
    make_host: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A kill mid-render, then another simulator call (not a read): the tree is complete."""
    base = make_host("minimal")
    done = tmp_path / "done"
    shutil.copytree(base, done, symlinks=True)
    calls = _count_calls(done, _enable, monkeypatch)
    _killed_at(base, _enable, calls // 2)
    sim.settle(base)
    assert tree(base) == tree(done)
