"""``vfctl sim init``: write a simulated host from a preset (or from a snapshot's state)
into an empty directory or over an earlier simulated host."""

from __future__ import annotations

from pathlib import Path

from vfctl.errors import UsageError
from vfctl.sim import state, tree
from vfctl.sim.catalog import PRESETS
from vfctl.sim.common import DEVICES, MARKER, State, simdir


def prepare(root: Path) -> None:
    """An empty directory or an existing simulated host (which is wiped); nothing else."""
    root.mkdir(parents=True, exist_ok=True)
    if simdir(root).is_dir():
        for name in ("sys", "dev", "proc", "etc", MARKER):
            tree.rm(root / name)
    elif any(root.iterdir()):
        raise UsageError(f"{root} is not empty and not a simulated host: refusing to write there")
    simdir(root).mkdir()
    (simdir(root) / "writes.log").write_text("")


def materialize(root: Path, st: State, configs: dict[str, bytes]) -> None:
    for bdf, data in configs.items():
        d = root / DEVICES / st["devices"][bdf]["path"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "config").write_bytes(data)
    state.save(root, st)
    with state.locked_raw(root) as saved:
        state.commit(root, saved, full=True)


def init(root: Path, preset: str = "default") -> None:
    """Write a simulated host under ``root`` (an empty directory or an earlier simulated host)."""
    root = Path(root)
    from vfctl.sim.presets import make  # builds config spaces: only here

    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    st, configs = make(preset)
    prepare(root)
    materialize(root, st, configs)
