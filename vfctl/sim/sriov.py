"""SR-IOV enable and disable (drivers/pci/iov.c): VFs appear as PCI devices with their
resources, IOMMU groups and netdevs, and the PF's config space follows.

Decisions where the kernel leaves room: VF netdevs are named ``<pf-ifname>v<N>`` (systemd's
SR-IOV naming); a PF driver's remove disables SR-IOV (igb/ixgbe do); new IOMMU group numbers
are the lowest free (the kernel's ida); VFs each get their own group.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from vfctl.pci.address import vf_address
from vfctl.sim import drivers, faults, tree
from vfctl.sim.common import DEVICES, VF_DEFAULTS, Dev, State

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def detach(st: State, bdf: str) -> None:
    """A driver's remove(): a PF driver disables SR-IOV first (igb/ixgbe do), then the limit
    it set is dropped."""
    dev = st["devices"][bdf]
    sr = dev.get("sriov")
    if sr is not None:
        if sr["num"] and drivers.driver_spec(st, dev["driver"]).get("sriov"):
            disable(st, bdf)
        sr["driver_max"] = None  # pci_iov_remove(): back to the capability's TotalVFs
    dev["driver"] = None


def totalvfs(dev: Dev) -> int:
    """pci_sriov_get_totalvfs(): the driver's limit when bound, else the capability's."""
    sr = dev["sriov"]
    return int(sr["driver_max"] if sr.get("driver_max") is not None else sr["cap_total"])


def patch_config(root: Path, dev: Dev, num: int) -> None:
    """Idempotent (it sets NumVFs to ``num``), so a replay after a kill is harmless."""
    from vfctl.sim import cfgbuild

    p = root / DEVICES / dev["path"] / "config"
    with contextlib.suppress(OSError):
        tree.atomic_write(p, cfgbuild.set_sriov_numvfs(p.read_bytes(), num))


def _free_group(st: State) -> int:
    used = {d["iommu_group"] for d in st["devices"].values() if d.get("iommu_group") is not None}
    n = 0
    while n in used:
        n += 1
    return n


def _random_mac(seed: str) -> str:
    """A stable locally administered unicast MAC, as eth_random_addr() would give."""
    import hashlib

    h = hashlib.sha256(seed.encode()).digest()
    octets = [(h[0] & 0xFC) | 0x02, *h[1:6]]
    return ":".join(f"{o:02x}" for o in octets)


def enable(root: Path, st: State, bdf: str, n: int, fault: dict[str, Any] | None) -> None:
    pf = st["devices"][bdf]
    sr = pf["sriov"]
    mode = faults.fault_mode(fault)
    count = n
    if mode == "partial" and fault is not None:
        count = max(0, min(n, int(fault.get("create", n - 1))))
    missing = -1
    if mode == "no_vf" and fault is not None:
        missing = int(fault.get("vf", count - 1))
    sr["num"] = count
    sr["vfs"] = [dict(VF_DEFAULTS) for _ in range(count)]
    st.setdefault("config_patches", []).append([bdf, count])
    parent = pf["path"].rsplit("/", 1)[0]
    pf_net = pf.get("net") if drivers.is_net(st, pf["driver"]) else None
    for i in range(count):
        if i == missing:
            continue
        vbdf = vf_address(bdf, sr["offset"], sr["stride"], i)
        rows = [[0, 0, 0] for _ in range(13)]
        for index, start, size, flags in sr["vf_bars"]:
            rows[index] = [start + i * size, start + (i + 1) * size - 1, flags]
        vf: Dev = {
            "path": f"{parent}/{vbdf}",
            "vendor": pf["vendor"],
            "device": sr["vf_device"],
            "subsystem_vendor": pf["subsystem_vendor"],
            "subsystem_device": pf["subsystem_device"],
            "class": pf["class"],
            "revision": pf["revision"],
            "irq": 0,
            "numa_node": pf["numa_node"],
            "local_cpulist": pf["local_cpulist"],
            "resources": rows,
            "driver": None,
            "driver_override": None,
            "iommu_group": None,
            "physfn": bdf,
            "vf_index": i,
            "net": None,
        }
        if pf_net is not None:
            vf["net"] = {
                "ifname": f"{pf_net['ifname']}v{i}",
                "mac": _random_mac(f"{vbdf}/{st.get('next_ifindex')}"),
                "mtu": 1500,
                "up": False,
                "carrier": False,
                "speed": -1,
                "master": None,
                "ifindex": 0,
            }
        st["devices"][vbdf] = vf
        vf["iommu_group"] = _free_group(st) if st.get("iommu", True) else None
        if not sr["autoprobe"]:
            continue
        if mode == "late_bind":
            st.setdefault("pending", []).append({"bdf": vbdf, "driver": None, "autoload": True})
        else:
            drivers.probe(st, vbdf, autoload=True)


def disable(st: State, bdf: str) -> None:
    pf = st["devices"][bdf]
    for vbdf in [b for b, d in st["devices"].items() if d.get("physfn") == bdf]:
        del st["devices"][vbdf]
    st["pending"] = [p for p in st.get("pending", []) if p["bdf"] in st["devices"]]
    pf["sriov"]["num"] = 0
    pf["sriov"]["vfs"] = []
    st.setdefault("config_patches", []).append([bdf, 0])
