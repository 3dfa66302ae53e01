"""The simulator's state file, its lock, and the crash-safe commit that renders the tree.

State lives in ``ROOT/.vfctl-sim/state.json`` (guarded by an flock on ``.vfctl-sim/lock``);
after each change the tree is reconciled with it. Config files on disk are authoritative for
config bytes (the simulator patches the PF's SR-IOV NumVFs/VF Enable/VF MSE; VF configs are
derived from the PF's).

``ROOT/.vfctl-sim/writes.log``: one line per write attempt (sysfs or netlink):
``<path as written>\\t<value, backslash-escaped>\\t<ok | ERRNO-NAME>``. Netlink settings are
logged with the path ``netlink/<pf-ifname>/vf<N>/<key>``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vfctl.sim import drivers, render, sriov
from vfctl.sim.common import MARKER, State, oserr, simdir

PENDING = "render-pending"  # write-ahead intent: the saved state is not fully on disk yet


@contextlib.contextmanager
def locked(root: Path, read_only: bool = False) -> Iterator[State]:
    """Load state under an exclusive flock, yield it, then make it durable and render it.

    ``read_only``: the caller only reads (a netlink dump): the state is committed only when
    settling pending binds changed it, instead of comparing a dump of the whole state with
    what was read (~2 ms on a 64-VF host, at every netlink read of a ``list``).

    Crash safety (kill -9 anywhere): the intent marker is created before the new state is
    saved and removed only after the tree matches it, so whoever finds the marker re-renders
    the whole tree from the saved state (idempotent) before anything reads or changes it.
    """
    sd = simdir(root)
    if not sd.is_dir():
        raise oserr(errno.ENOENT, f"{root} is not a simulated host (no {MARKER}/)")
    fd = os.open(sd / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = (sd / "state.json").read_text()
        st: State = json.loads(text)
        if (sd / PENDING).exists():
            commit(root, st, full=True)  # a killed writer: finish its render first
            text = ""
        settles = bool(st.get("pending"))
        try:
            drivers.settle_pending(st)
            yield st
        finally:
            if (settles or not read_only) and _dump(st) != text:  # unchanged: no commit
                commit(root, st)
    finally:
        os.close(fd)


def commit(root: Path, st: State, full: bool = False) -> None:
    """Intent marker, state, config patches and tree, in an order a kill cannot break."""
    sd = simdir(root)
    if full:
        st["_fp"] = {}  # the tree may be half-rendered anywhere: compare every part
    (sd / PENDING).touch()
    save(root, st)
    for bdf, num in st.get("config_patches", []):
        if bdf in st["devices"]:
            sriov.patch_config(root, st["devices"][bdf], num)
    render.render(root, st)
    st.pop("config_patches", None)
    save(root, st)
    os.unlink(sd / PENDING)


def repair(root: Path) -> None:
    """Finish the render of a writer killed mid-way (a no-op when none was): readers call it."""
    sd = simdir(Path(root))
    if not (sd / PENDING).exists():
        return
    with contextlib.suppress(OSError), locked_raw(Path(root)) as st:
        if (sd / PENDING).exists():
            commit(Path(root), st, full=True)


@contextlib.contextmanager
def locked_raw(root: Path) -> Iterator[State]:
    """State under the flock, without settling pending binds or rendering on the way out."""
    sd = simdir(root)
    fd = os.open(sd / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield json.loads((sd / "state.json").read_text())
    finally:
        os.close(fd)


def _dump(st: State) -> str:
    """state.json's text: compact and sorted, so the C encoder writes it (an indent needs the
    pure-Python one, ~15x slower) and every command can compare it with what it read."""
    return json.dumps(st, sort_keys=True)


def save(root: Path, st: State) -> None:
    sd = simdir(root)
    tmp = sd / f"state.json.{os.getpid()}"
    tmp.write_text(_dump(st))
    os.replace(tmp, sd / "state.json")


def log(root: Path, path: str, value: str, result: str) -> None:
    shown = value.encode("unicode_escape").decode("ascii").replace("\t", "\\t")
    with open(simdir(root) / "writes.log", "a", encoding="utf-8") as f:
        f.write(f"{path}\t{shown}\t{result}\n")
