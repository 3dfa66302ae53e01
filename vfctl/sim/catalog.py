"""The simulator's preset names and the drivers it knows: plain data, cheap to import.

Apart from :mod:`vfctl.sim.presets` (which builds config spaces with
:mod:`vfctl.sim.cfgbuild`): reading a simulated host needs the driver table (which driver
makes a netdev, which ids it binds), not the builder, and the lean ``list --json`` path pays
for every import.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


PRESETS: dict[str, str] = {
    "default": (
        "Proxmox-like host: Intel 82599 dual-port 10G (ixgbe, 63 VFs/port), Intel 82576 "
        "dual-port 1G (igb, 7 VFs/port, both ports in one IOMMU group), Intel I210 (no SR-IOV) "
        "enslaved to bridge vmbr0 which holds the management IP and default route"
    ),
    "minimal": "one Intel 82576 port (igb, 7 VFs) behind one root port",
    "lab": (
        "shaped like the QEMU lab guest: two emulated 82576 (igb) on separate root ports and an "
        "NVMe controller 1b36:0010 with SR-IOV (4 VFs, offset 1, stride 1)"
    ),
}

# What the simulator knows of each driver. ``ids`` are "vvvv:dddd" (static id table),
# ``classes`` are class codes matched exactly, ``max_vfs`` the value the driver gives
# pci_sriov_set_totalvfs(), ``vf_ops`` which netlink semantics its ndo_set_vf_* follow.
DRIVERS: dict[str, dict[str, Any]] = {
    "pcieport": {"module": None, "classes": [0x060400], "ids": []},
    "igb": {
        "module": "igb",
        "ids": ["8086:10c9", "8086:10e6", "8086:10e7", "8086:10e8", "8086:1533", "8086:1521"],
        "net": True,
        "sriov": True,
        "max_vfs": 7,
        "vf_ops": "igb",
    },
    "ixgbe": {
        "module": "ixgbe",
        "ids": ["8086:10fb", "8086:10fc", "8086:1528", "8086:154d"],
        "net": True,
        "sriov": True,
        "max_vfs": 63,
        "vf_ops": "ixgbe",
    },
    "igbvf": {"module": "igbvf", "ids": ["8086:10ca", "8086:1520"], "net": True},
    "ixgbevf": {"module": "ixgbevf", "ids": ["8086:10ed", "8086:1515"], "net": True},
    "nvme": {"module": "nvme", "classes": [0x010802], "ids": [], "sriov": True},
    # stub drivers with no id table: they bind through driver_override (or new_id) only.
    # Kernel: drivers/pci/pci-stub.c matches only the ids given in its `ids=` module parameter
    # (none by default); drivers/uio/uio_pci_generic.c "does not declare any device ids"
    "pci-stub": {"module": "pci_stub", "ids": [], "override_only": True},
    "uio_pci_generic": {"module": "uio_pci_generic", "ids": [], "override_only": True},
    "vfio-pci": {
        "module": "vfio_pci",
        "ids": [],
        "override_only": True,
        "deps": ["vfio", "vfio_iommu_type1", "vfio_pci_core"],
    },
}
