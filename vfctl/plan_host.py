"""Host planning as pure functions of the model: numvfs, autoprobe, driver binding, and the
checks of a re-discovered model after the run.

No Host, no netlink, no /proc: everything the rules need (in-use facts included) is in the
model discovery built, so each rule is unit-tested with a hand-made model
(tests/planners). The writers these actions name are in ``vfctl.ops_host``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vfctl import vfattrs
from vfctl.discover import MAX_VFS, check_sound
from vfctl.errors import HostError, RefusedError, UsageError
from vfctl.host.sysfs import PCI_DEVICES
from vfctl.inuse import (
    host_nic_reason,
    netdev_uses,
    pool_user,
    require,
    vf_users,
    vfio_users,
)
from vfctl.model import PF, VF, HostModel
from vfctl.plan import Action

VFIO = "vfio-pci"
STUB_DRIVERS = ("vfio-pci", "pci-stub")


def default_timeout(n: int) -> float:
    """Some NICs take about a second per VF to enable; scale with the count."""
    return 10.0 + 1.0 * n


def _pfdir(pf: PF) -> str:
    return f"{PCI_DEVICES}/{pf.address}"


def plan_autoprobe(pf: PF, value: bool | None) -> list[Action]:
    if value is None or pf.autoprobe is None or pf.autoprobe == value:
        return []
    path = f"{_pfdir(pf)}/sriov_drivers_autoprobe"
    old, new = "1" if pf.autoprobe else "0", "1" if value else "0"
    return [
        Action(
            "sysfs.write",
            f"{pf.address} sriov_drivers_autoprobe",
            f"{old} -> {new}",
            {"path": path, "value": new},
            Action(
                "sysfs.write",
                f"{pf.address} sriov_drivers_autoprobe",
                f"{new} -> {old}",
                {"path": path, "value": old},
            ),
        )
    ]


def check_numvfs_users(model: HostModel, pf: PF, *, force: bool, force_host_nic: bool) -> None:
    """Refuse a VF-count change the host would feel: its connectivity, VFs in use.

    The default-route chain (through the PF or a VF netdev) needs --force-host-nic and nothing
    else; VFs held open by a process block even --force (the kernel would wait for them).
    """
    facts = model.inuse
    require(facts)
    name = pf.netdev or pf.address
    reason = host_nic_reason(facts, pf.netdevs)
    if reason and not force_host_nic:
        raise RefusedError(
            f"{pf.address}: {reason}; changing its VFs may reset the link and cut the host off "
            "(--force-host-nic to do it anyway)",
            override="--force-host-nic",
        )
    if pf.num_vfs == 0:
        return
    host_nics = set()
    for vf in pf.vfs:
        why = host_nic_reason(facts, [vf.netdev]) if vf.netdev else None
        if why and not force_host_nic:
            raise RefusedError(
                f"{name}: VF {vf.index} ({vf.address}): {why}; removing the VFs cuts the host "
                "off (--force-host-nic to do it anyway)",
                override="--force-host-nic",
            )
        if why:
            host_nics.add(vf.address)  # --force-host-nic covers what the host does with it
    users = vf_users(facts, pf.vfs, skip_netdevs=host_nics)
    hard = [u for u in users if u.hard]
    soft = [u for u in users if not u.hard]
    if hard:
        raise RefusedError(
            f"{name}: cannot change the VF count while VFs are held open — "
            + "; ".join(map(str, hard))
            + " (the kernel would block until they close; stop those processes first)"
        )
    if soft and not force:
        raise RefusedError(
            f"{name}: VFs in use — "
            + "; ".join(map(str, soft))
            + " (--force to remove them anyway)",
            override="--force",
        )


def plan_numvfs(
    model: HostModel,
    pf: PF,
    n: int,
    *,
    force: bool = False,
    force_host_nic: bool = False,
    timeout: float | None = None,
    autoprobe: bool | None = None,
    was_autoprobe: bool | None = None,
) -> list[Action]:
    """Actions taking a PF from its current VF count to n, with the kernel's rules checked first.

    ``was_autoprobe``: the PF's autoprobe before the run when ``pf`` already shows a planned
    new value (profiles plan autoprobe as a phase of its own).
    """
    check_sound(pf)
    name = pf.netdev or pf.address
    if not 0 <= n <= MAX_VFS:
        raise UsageError(f"invalid VF count {n} for {name}: 0 to {MAX_VFS}")
    if pf.driver is None:
        raise HostError(
            f"{name} ({pf.address}) has no driver bound: the PF driver creates VFs "
            "(ENOENT, no sriov_configure); load or bind its driver first"
        )
    if n > pf.total_vfs:
        cap = (
            f"; the capability allows {pf.cap_total_vfs}, the driver or firmware limits it"
            if pf.cap_total_vfs and pf.cap_total_vfs > pf.total_vfs
            else ""
        )
        raise UsageError(f"{name}: {n} VFs requested but sriov_totalvfs is {pf.total_vfs}{cap}")
    actions = plan_autoprobe(pf, autoprobe)
    if n == pf.num_vfs:
        return actions
    check_numvfs_users(model, pf, force=force, force_host_nic=force_host_nic)
    t = timeout if timeout is not None else default_timeout(max(n, pf.num_vfs))
    expect_probe = (autoprobe if autoprobe is not None else pf.autoprobe) is not False
    # the VFs there now were probed under the autoprobe value they were created with: an undo
    # that re-creates them must do it under that value again, not under the run's new one
    created_with = (pf.autoprobe if was_autoprobe is None else was_autoprobe) is not False

    def set_n(frm: int, to: int) -> Action:
        back: dict[str, Any] = {"pf": pf.address, "num": frm, "timeout": t, "probe": expect_probe}
        if frm == pf.num_vfs and frm > 0 and to == 0:
            # removing VFs loses their binding and admin settings: a rollback puts them back
            back["probe"] = created_with
            back["autoprobe"] = created_with
            back["restore"] = vf_state(pf)
            back["pf_netdev"] = pf.netdev
        return Action(
            "sriov.numvfs",
            f"{pf.address} sriov_numvfs",
            f"{frm} -> {to}",
            {"pf": pf.address, "num": to, "timeout": t, "probe": expect_probe},
            Action("sriov.numvfs", f"{pf.address} sriov_numvfs", f"{to} -> {frm}", back),
        )

    if pf.num_vfs > 0 and n > 0:
        # the kernel refuses a different non-zero count (EBUSY): go through 0
        actions += [set_n(pf.num_vfs, 0), set_n(0, n)]
    else:
        actions.append(set_n(pf.num_vfs, n))
    return actions


def vf_state(pf: PF) -> list[dict[str, Any]]:
    """What re-created VFs need back: their driver (host driver, vfio-pci or none),
    driver_override and the settings that are not defaults — every VF, so a rollback can
    check each one."""
    out = []
    for vf in pf.vfs:
        settings = vfattrs.not_default(vf.settings)
        out.append(
            {
                "index": vf.index,
                "driver": vf.driver,
                "override": vf.driver_override,
                "settings": settings,
            }
        )
    return out


def check_rebind(
    model: HostModel, pf: PF, vf: VF, *, force: bool = False, force_host_nic: bool = False
) -> None:
    """Refuse taking a VF from its current driver while something uses it (the same facts
    as a VF-count change; the default-route chain needs --force-host-nic)."""
    facts = model.inuse
    require(facts)
    who = f"{vf.address} (VF {vf.index} of {pf.netdev or pf.address})"
    if vf.netdev:
        reason = host_nic_reason(facts, [vf.netdev])
        if reason and not force_host_nic:
            raise RefusedError(
                f"{who}: {reason}; unbinding it cuts the host off "
                "(--force-host-nic to do it anyway)",
                override="--force-host-nic",
            )
        blockers = [] if reason else netdev_uses(facts, vf.netdev, numvfs=False)
        if blockers and not force:
            raise RefusedError(
                f"{who}: " + "; ".join(blockers) + " (--force to unbind anyway)", override="--force"
            )
    for h in vfio_users(facts, vf):
        raise RefusedError(f"{vf.address}: /dev/vfio/{vf.iommu_group} is held open by {h}")
    pu = pool_user(vf)
    if pu is not None and (pu[1] or not force):
        raise RefusedError(
            f"{vf.address}: {pu[0]}" + ("" if pu[1] else " (--force to rebind anyway)"),
            override=None if pu[1] else "--force",
        )
    if vf.held_by is not None and not force:
        raise RefusedError(
            f"{vf.address}: held by {vf.held_by.describe()} (--force to rebind anyway)",
            override="--force",
        )
    for a in vf.attached_to:
        if not force:
            raise RefusedError(
                f"{vf.address}: attached to {a.backend} VM {a.vm}; "
                "detach it first (--force to rebind anyway)",
                override="--force",
            )


def plan_bind(
    model: HostModel,
    pf: PF,
    vfs: Sequence[VF],
    driver: str | None,
    *,
    force: bool = False,
    force_host_nic: bool = False,
) -> list[Action]:
    """Bind VFs to ``driver`` (None: back to their default driver) through driver_override."""
    actions: list[Action] = []
    selected = {v.address for v in vfs}
    for vf in vfs:
        if driver is None:
            if vf.driver_override is None:
                continue
        elif vf.driver == driver and vf.driver_override == driver:
            continue
        if vf.driver and vf.driver != driver:
            check_rebind(model, pf, vf, force=force, force_host_nic=force_host_nic)
        if driver in STUB_DRIVERS and vf.iommu_group is not None:
            check_group_viable(model, vf, selected)
        target = f"{vf.address} driver"
        actions.append(
            Action(
                "pci.driver",
                target,
                f"{vf.driver or 'none'} -> {driver or 'default'}",
                {
                    "address": vf.address,
                    "override": driver,
                    "expect": driver,
                    "group": vf.iommu_group,
                },
                Action(
                    "pci.driver",
                    target,
                    f"{driver or 'default'} -> {vf.driver or 'none'}",
                    {
                        "address": vf.address,
                        "override": vf.driver_override,
                        "expect": vf.driver,
                        "group": vf.iommu_group,
                    },
                ),
            )
        )
    return actions


def check_group_viable(model: HostModel, vf: VF, selected: set[str]) -> None:
    """Every other device in the VF's IOMMU group must be vfio/stub-bound, driverless or a bridge."""
    assert vf.iommu_group is not None
    blockers = []
    for d in model.group_members(vf.iommu_group):
        if d.address == vf.address or d.address in selected or d.is_bridge:
            continue
        if d.driver is None or d.driver in STUB_DRIVERS:
            continue
        nd = f", netdev {','.join(d.netdevs)}" if d.netdevs else ""
        blockers.append(f"{d.address} (driver {d.driver}{nd})")
    if blockers:
        raise RefusedError(
            f"{vf.address}: IOMMU group {vf.iommu_group} is not viable for vfio — "
            + "; ".join(blockers)
            + " also in the group; bind them to vfio-pci too, or use a slot/ACS setup that "
            "isolates the VF"
        )


# ---------------------------------------------------------------- verification (re-discovered)


def verify_numvfs(new: HostModel, address: str, n: int) -> None:
    """After the run: the kernel reports n VFs and n virtfn links for the PF."""
    for p in new.pfs:
        if p.address == address and (p.num_vfs != n or len(p.vfs) != n):
            raise HostError(
                f"{address}: verify failed: numvfs {p.num_vfs}, {len(p.vfs)} VF links, wanted {n}"
            )


def verify_driver(new: HostModel, addresses: Sequence[str], driver: str | None) -> None:
    """After the run: each VF is on ``driver`` (None: whatever its default driver is)."""
    if driver is None:
        return
    now = {v.address: v for q in new.pfs for v in q.vfs}
    for a in addresses:
        got = now.get(a)
        if got is None or got.driver != driver:
            raise HostError(
                f"{a}: verify failed: driver {got.driver if got else 'gone'}, wanted {driver}"
            )


__all__ = [
    "STUB_DRIVERS",
    "VFIO",
    "check_group_viable",
    "check_numvfs_users",
    "check_rebind",
    "default_timeout",
    "plan_autoprobe",
    "plan_bind",
    "plan_numvfs",
    "verify_driver",
    "verify_numvfs",
    "vf_state",
]
