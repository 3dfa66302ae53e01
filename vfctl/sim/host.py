"""A simulated host: the real Host's reads, with writes, module loads and probes done by the
kernel simulator instead of the filesystem, so they follow the kernel's rules."""

from __future__ import annotations

import os
from functools import cached_property

from vfctl.host.sysfs import Host
from vfctl.sim import state, writes
from vfctl.sim.common import simdir
from vfctl.sim.netlink import SimNetlink
from vfctl.sim.state import PENDING

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from vfctl.host.netlink import Netlink


class SimHost(Host):
    """A root made by ``vfctl sim init``/``snapshot``; reads go to its tree as on a real host."""

    # its run/ sockets (if a test made any) are not daemons serving this tree
    live = False

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        super().__init__(root)
        if (simdir(self.root) / PENDING).exists():
            state.repair(self.root)  # a simulated write was killed mid-way: finish it first

    def __repr__(self) -> str:
        return f"Host({str(self.root)!r}, simulated)"

    @cached_property
    def netlink(self) -> Netlink:
        return SimNetlink(self)

    def write(self, rel: str, value: str) -> None:
        writes.write(self.root, rel, value)

    def settle(self) -> None:
        """Run pending (late) driver probes now, as the kernel would have by itself."""
        writes.settle(self.root)

    def _load_module(self, module: str) -> None:
        writes.modprobe(self.root, module)

    def _module_known(self, module: str) -> bool | None:
        return writes.module_known(self.root, module)
