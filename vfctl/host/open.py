"""The one place that decides what kind of host a root is: the simulator's or a real one.

A root holding ``.vfctl-sim/`` (written by ``vfctl sim init``/``snapshot``) is a simulated
host: its writes, module loads and netlink go to the kernel simulator (:mod:`vfctl.sim`).
Everything else is read and written as the kernel's sysfs. Nothing outside this module and
the simulator's package asks which kind a Host is; they call its methods.
"""

from __future__ import annotations

import os

from vfctl.host.netlink import KernelNetlink, Netlink
from vfctl.host.sysfs import Host

SIM_MARKER = ".vfctl-sim"


def open_host(root: str | os.PathLike[str] = "/") -> Host:
    """The Host for this root (the simulator is imported only for a simulated one)."""
    if os.path.isdir(os.path.join(root, SIM_MARKER)):
        from vfctl.sim.host import SimHost

        return SimHost(root)
    return KernelHost(root)


class KernelHost(Host):
    """A root read and written as the kernel's sysfs, with the kernel's rtnetlink."""

    def _open_netlink(self) -> Netlink:
        return KernelNetlink(self)
