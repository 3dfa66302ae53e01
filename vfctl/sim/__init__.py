"""The kernel simulator: a host tree in the real sysfs layout whose writes and netlink follow
the kernel's SR-IOV, driver-binding and VFIO rules (docs/sim.md).

It implements the same interfaces as the real adapters: :class:`vfctl.sim.host.SimHost` is a
:class:`vfctl.host.sysfs.Host`, its ``netlink`` a :class:`vfctl.host.netlink.Netlink`.
:func:`vfctl.host.open.open_host` is the one place that picks it.
"""
