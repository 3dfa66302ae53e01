"""Run vfctl, killing itself with SIGKILL at its k-th state-changing file operation.

Usage: ``python crashrun.py K COUNTFILE vfctl-args...``. K=0 runs to the end and writes the
number of operations it made to COUNTFILE (the range the matrix draws its points from).
The operations are vfctl's sysfs and netlink writes, its journal writes, and (on a simulated
host) the simulator's own (state save, tree files and links, config bytes), so a kill lands
between any two steps of either — on the real kernel too (tests/lab/test_lab_crash.py).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from vfctl import plan
from vfctl.host import netlink
from vfctl.host.sysfs import Host
from vfctl.sim import state as simstate
from vfctl.sim import tree as simtree
from vfctl.sim.host import SimHost

try:
    from vfctl.host import statedir

    JOURNAL: tuple[Any, tuple[str, ...]] = (statedir, ("write", "remove"))
except ImportError:  # vfctl before the private state directory: its journal methods
    JOURNAL = (plan.Journal, ("save", "clear"))
# the simulator's own steps: every tree change goes through vfctl.sim.tree, every state save
# through vfctl.sim.state.save
SIM = ((simtree, ("put", "link", "rm", "atomic_write")), (simstate, ("save",)))
HOOKS = ((Host, ("write",)), (SimHost, ("write",)), (netlink, ("set_vf",)), *SIM, JOURNAL)


def main() -> None:
    k, countfile, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    n = [0]
    for mod, names in HOOKS:
        for name in names:
            real = getattr(mod, name)

            def hooked(*a: Any, _real: Any = real, **kw: Any) -> Any:
                n[0] += 1
                if n[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _real(*a, **kw)

            setattr(mod, name, hooked)
    sys.argv = ["vfctl", *args]
    from vfctl.cli import app

    try:
        app()
    except SystemExit as e:
        with open(countfile, "w") as f:
            f.write(str(n[0]))
        raise SystemExit(e.code) from None


if __name__ == "__main__":
    main()
