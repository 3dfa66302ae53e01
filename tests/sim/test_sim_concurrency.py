"""Eight processes writing at once: the simulator's own flock keeps state.json whole."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

from simhelpers import dev, log_lines, rd

from vfctl import sim

VFS = [f"0000:01:1{i // 4}.{(i % 4) * 2}" for i in range(7)]
ROUNDS = 6


def _worker(root: str, n: int) -> None:
    vf = VFS[n % len(VFS)]
    for r in range(ROUNDS):
        sim.write(Path(root), dev(vf, "driver_override"), f"w{n}r{r}")
        sim.set_vf(Path(root), "enp1s0", n % len(VFS), trust=bool(r % 2))


def test_eight_writers(minimal: Path) -> None:
    sim.write(minimal, dev("0000:01:00.0", "sriov_numvfs"), "7")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(minimal), n)) for n in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    lines = log_lines(minimal)
    assert len(lines) == 1 + 8 * ROUNDS * 2 and all(x[2] == "ok" for x in lines)
    state = json.loads((minimal / ".vfctl-sim/state.json").read_text())
    # each VF's override is the last round of one of the writers that used it
    for i, vf in enumerate(VFS):
        writers = [n for n in range(8) if n % len(VFS) == i]
        assert rd(minimal, dev(vf, "driver_override")) in {f"w{n}r{ROUNDS - 1}" for n in writers}
        assert state["devices"][vf]["driver_override"] == rd(minimal, dev(vf, "driver_override"))
    assert not [f for f in os.listdir(minimal / ".vfctl-sim") if f.startswith("state.json.")]
