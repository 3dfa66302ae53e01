"""Hand-made host models for the planner tests: no host, no simulator, no CLI."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vfctl.model import (
    PF,
    VF,
    Attachment,
    Device,
    HeldBy,
    HostModel,
    InUse,
    NetLink,
    PoolRef,
    VfioHolder,
    VFSettings,
)
from vfctl.pci import address

PF_ADDR = "0000:01:00.0"


def vf_addr(i: int, pf: str = PF_ADDR) -> str:
    """Where the kernel puts VF i (offset 128, stride 2, as the 82599)."""
    return address.vf_address(pf, 128, 2, i)


def vf(i: int, pf: str = PF_ADDR, **kw: Any) -> VF:
    """VF i of the PF, bound to ixgbevf with netdev <pf>v<i> and its own IOMMU group."""
    base = VF(
        index=i,
        address=vf_addr(i, pf),
        driver="ixgbevf",
        driver_override=None,
        netdev=f"enp1s0f0v{i}",
        iommu_group=40 + i,
        vendor_id="8086",
        device_id="10ed",
    )
    return replace(base, **kw)


def pf(n: int = 0, **kw: Any) -> PF:
    """An 82599 PF (ixgbe, 63 VFs allowed) with n VFs."""
    vfs = kw.pop("vfs", tuple(vf(i) for i in range(n)))
    base = PF(
        address=PF_ADDR,
        netdev="enp1s0f0",
        netdevs=("enp1s0f0",),
        driver="ixgbe",
        vendor_id="8086",
        device_id="10fb",
        class_code="020000",
        name=None,
        total_vfs=63,
        cap_total_vfs=64,
        initial_vfs=64,
        num_vfs=len(vfs),
        vf_offset=128,
        vf_stride=2,
        vf_device_id="10ed",
        autoprobe=True,
        numa_node=0,
        iommu_group=1,
        link="5GT/s x8",
        ari=False,
        vfs=tuple(vfs),
    )
    return replace(base, **kw)


def link(name: str, **kw: Any) -> NetLink:
    return NetLink(name, kw.pop("kind", None), kw.pop("up", False), **kw)


def holder(group: int, pid: int = 4242, comm: str = "qemu-system-x86") -> VfioHolder:
    return VfioHolder(group, pid, comm)


def model(
    *pfs: PF,
    links: tuple[NetLink, ...] = (),
    vfio: tuple[VfioHolder, ...] = (),
    devices: tuple[Device, ...] = (),
    collected: bool = True,
) -> HostModel:
    """A model whose in-use facts are the given links and holders (PF netdevs are up)."""
    have = {li.ifname for li in links}
    base = tuple(NetLink(nd, None, True) for p in pfs for nd in p.netdevs if nd not in have)
    facts = InUse(links=base + links, vfio=vfio, collected=collected)
    return HostModel(pfs=pfs, devices=devices, inuse=facts)


def device(address: str, driver: str | None, group: int, **kw: Any) -> Device:
    base = Device(address, driver, "020000", (), group, False, None)
    return replace(base, **kw)


def attached(vm: str = "vm101") -> tuple[Attachment, ...]:
    return (Attachment("proxmox", vm, vm[2:], "hostpci0", live=True),)


def pool(managed: bool) -> PoolRef:
    return PoolRef("pool-a", ("vm101",), managed)


def reserved(vm: str = "vm102") -> HeldBy:
    return HeldBy(vm, None, "proxmox")


def with_settings(v: VF, **kw: Any) -> VF:
    return replace(v, settings=VFSettings(**kw))
