"""Literal PFs/VFs for attach planning: the pure planner tests (tests/core) and the PVE backend
tests (tests/pve) build the same 82599 from here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.model import PF, VF, HeldBy, VFSettings


def vf(index: int = 3, driver: str | None = "vfio-pci", **kw: Any) -> VF:
    """VF ``index`` of an 82599 at 0000:03:00.0 (stride 2: VF 3 is 0000:03:10.6)."""
    return VF(
        index=index,
        address=f"0000:03:1{index // 4}.{(index % 4) * 2}",
        driver=driver,
        driver_override=driver,
        netdev=None,
        iommu_group=40 + index,
        vendor_id="8086",
        device_id="10ed",
        **kw,
    )


def pf(*vfs: VF, netdev: str = "eth2") -> PF:
    return PF(
        address="0000:03:00.0",
        netdev=netdev,
        netdevs=(netdev,),
        driver="ixgbe",
        vendor_id="8086",
        device_id="10fb",
        class_code="020000",
        name=None,
        total_vfs=63,
        cap_total_vfs=64,
        initial_vfs=64,
        num_vfs=8,
        vf_offset=128,
        vf_stride=2,
        vf_device_id="10ed",
        autoprobe=False,
        numa_node=0,
        iommu_group=12,
        link=None,
        ari=False,
        vfs=vfs or tuple(vf(i) for i in range(8)),
    )


def request(
    vm: str, v: VF | None = None, force: bool = False, planned: tuple[Any, ...] = (), **opts: Any
) -> AttachRequest:
    v = v or vf()
    return AttachRequest(vm=vm, pf=pf(), vf=v, force=force, options=opts, planned=planned)


def held(v: VF, vm: str | None, pid: int | None = 4242) -> VF:
    return replace(v, held_by=HeldBy(vm=vm, pid=pid))


def with_mac(v: VF, mac: str) -> VF:
    return replace(v, settings=VFSettings(mac=mac))
