"""The kernel simulator behind ``vfctl sim``: a host tree in the real sysfs layout whose writes
and netlink follow the kernel's SR-IOV, driver-binding and VFIO rules (docs/sim.md).

Why: vfctl must be testable (and demonstrable) without SR-IOV hardware, and every rule it
relies on must behave as the lab's real kernel did (shared/LAB.md). Reads need no simulator:
the tree on disk *is* the host, in the layout pciutils and vfctl read. The simulator
implements the same interfaces as the real adapters: :class:`vfctl.sim.host.SimHost` is a
:class:`vfctl.host.sysfs.Host` whose writes, module loads and probes come here, and its
``netlink`` (:class:`vfctl.sim.netlink.SimNetlink`) a :class:`vfctl.host.netlink.Netlink`.
:func:`vfctl.host.open.open_host` is the one place that picks it.

This package's top level is the simulator's API for tests, the fake PVE and ``vfctl sim``;
each module holds one concern (docs/architecture.md lists them). Importing it loads nothing:
each name is imported from its module on first use, so a read of a simulated host (SimHost,
SimNetlink, the state) loads neither the tree builder nor the writer side; the lean read path
pays for every import.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    from vfctl.sim.catalog import PRESETS
    from vfctl.sim.common import MARKER
    from vfctl.sim.create import init
    from vfctl.sim.netdevs import (
        link_info,
        links,
        set_link,
        set_vf,
        vf_info,
        vf_info_all,
        vf_stats,
    )
    from vfctl.sim.snapshot import snapshot
    from vfctl.sim.state import locked, repair
    from vfctl.sim.writes import modprobe, module_known, settle, write

# where each name of the API lives: imported on first use, so a read of a simulated host
# (vfctl.sim.host) loads neither the tree builder nor the snapshot code
_HOME = {
    "PRESETS": "catalog",
    "MARKER": "common",
    "init": "create",
    **dict.fromkeys(
        ("link_info", "links", "set_link", "set_vf", "vf_info", "vf_info_all", "vf_stats"),
        "netdevs",
    ),
    "snapshot": "snapshot",
    "locked": "state",
    "repair": "state",
    **dict.fromkeys(("modprobe", "module_known", "settle", "write"), "writes"),
}


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    # bound here for good: importing vfctl.sim.snapshot just bound the name to the module
    globals()[name] = value
    return value


__all__ = [
    "MARKER",
    "PRESETS",
    "init",
    "link_info",
    "links",
    "locked",
    "modprobe",
    "module_known",
    "repair",
    "set_link",
    "set_vf",
    "settle",
    "snapshot",
    "vf_info",
    "vf_info_all",
    "vf_stats",
    "write",
]
