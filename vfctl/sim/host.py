"""A simulated host: the real Host's reads, with writes, module loads and probes done by the
kernel simulator instead of the filesystem, so they follow the kernel's rules."""

from __future__ import annotations

import os

from vfctl.host.sysfs import Host
from vfctl.sim import state
from vfctl.sim.common import MARKER
from vfctl.sim.netlink import SimNetlink

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from vfctl.host.netlink import Netlink


class SimHost(Host):
    """A root made by ``vfctl sim init``/``snapshot``; reads go to its tree as on a real host."""

    # its run/ sockets (if a test made any) are not daemons serving this tree
    live = False

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        super().__init__(root)
        if os.path.exists(os.path.join(self.top, MARKER, state.PENDING)):
            state.repair(self.top)  # a simulated write was killed mid-way: finish it first

    def __repr__(self) -> str:
        return f"Host({self.top!r}, simulated)"

    def _open_netlink(self) -> Netlink:
        return SimNetlink(self)

    # the writer side of the simulator is imported by the first write, never by a read
    def write(self, rel: str, value: str) -> None:
        from vfctl.sim import writes

        writes.write(self.root, rel, value)

    def settle(self) -> None:
        """Run pending (late) driver probes now, as the kernel would have by itself."""
        state.settle(self.top)

    def _load_module(self, module: str) -> None:
        from vfctl.sim import writes

        writes.modprobe(self.root, module)

    def _module_known(self, module: str) -> bool | None:
        from vfctl.sim import writes

        return writes.module_known(self.root, module)
