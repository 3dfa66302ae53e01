"""Planning of the cluster PCI mappings an attach/detach needs: create, re-point, complete,
delete when unused. Pure: decides from ``PveFacts`` (``pve_plan``) and the request.

A mapping vfctl did not create (its description lacks ``MANAGED_PREFIX``) is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.backends.pve_hostpci import (
    SLOTS,
    MapEntry,
    PropertyStringError,
    format_map_entry,
    parse_hostpci,
    parse_map_entry,
    vendor_device,
)
from vfctl.backends.pve_mapping import MANAGED_PREFIX, PciMapping
from vfctl.backends.pve_plan import PveFacts, SysfsIds, action, unfit
from vfctl.errors import HostError, RefusedError
from vfctl.plan import Action


def complete(e: MapEntry, ids: Mapping[str, SysfsIds]) -> MapEntry:
    """``e`` with a missing iommugroup/subsystem-id taken from what sysfs said, if it said."""
    if len(e.path) != 1:
        return e
    group, subsystem = ids.get(e.path[0], (None, None))
    return replace(
        e,
        iommugroup=e.iommugroup if e.iommugroup is not None else group,
        subsystem_id=e.subsystem_id or subsystem,
    )


def needs_ids(facts_node: str, mappings: list[PciMapping], address: str) -> list[str]:
    """Addresses whose sysfs ids a plan may need: the VF's, and this node's incomplete entries."""
    out = [address]
    for m in mappings:
        for e in m.on(facts_node):
            if len(e.path) == 1 and (e.iommugroup is None or e.subsystem_id is None):
                out.append(e.path[0])
    return list(dict.fromkeys(out))


def mapping_actions(facts: PveFacts, mid: str, req: AttachRequest) -> list[Action]:
    """Create mapping ``mid`` for the VF, or point this node's entry of a vfctl mapping at it."""
    vf, node = req.vf, facts.node
    vid = vendor_device(vf.vendor_id, vf.device_id)
    if vid is None:
        raise HostError(
            f"VF {vf.address}: sysfs vendor/device {vf.vendor_id!r}:{vf.device_id!r} is not "
            "two 4-digit hex ids; not writing it into a PCI mapping"
        )
    entry = complete(
        MapEntry(node=node, path=(vf.address,), id=vid, iommugroup=vf.iommu_group), facts.ids
    )
    try:
        format_map_entry(entry)
    except PropertyStringError as exc:
        raise unfit(vf.address, exc) from None
    # a VF this run creates: sysfs cannot tell yet, the op reads it when it writes
    fill = vf.address if entry.iommugroup is None or entry.subsystem_id is None else None
    later = " (iommugroup/subsystem-id read at execution)" if fill else ""
    existing = next((m for m in facts.mappings if m.id == mid), None)
    target = f"mapping {mid}"
    if existing is None:
        new_map = [format_map_entry(entry)]
        desc = f"{MANAGED_PREFIX} {req.pf.netdev or req.pf.address} VF {vf.index}"
        undo = action(
            facts,
            "proxmox.mapping_delete",
            target,
            "delete",
            {"id": mid, "expect": new_map, "written_fill": fill},
        )
        return [
            action(
                facts,
                "proxmox.mapping_put",
                target,
                f"create: {node} -> {vf.address}{later}",
                {"id": mid, "map": new_map, "description": desc, "expect": None, "fill": fill},
                undo,
            )
        ]
    mine = existing.on(node)
    if len(mine) == 1 and mine[0].path == (vf.address,):
        return fill_actions(facts, existing)
    if not existing.managed:
        where = (
            f"maps node {node} to {';'.join(mine[0].path)}"
            if mine
            else f"has no entry for node {node}"
        )
        raise RefusedError(
            f"PCI mapping {mid} {where}, not {vf.address}, and was not created by vfctl: "
            "vfctl never edits it, not even with --force; attach without --mapping (vfctl "
            f"then makes its own mapping), or change {mid} in PVE (Datacenter > Resource "
            f"Mappings, or pvesh set /cluster/mapping/pci/{mid})"
        )
    old_map = list(existing.raw)
    keep: list[str] = []
    for raw in old_map:
        try:
            if parse_map_entry(raw).node == node:
                continue
        except PropertyStringError:
            pass
        keep.append(raw)
    new_map = [*keep, format_map_entry(entry)]
    old_desc = existing.description
    undo = action(
        facts,
        "proxmox.mapping_put",
        target,
        "restore",
        {
            "id": mid,
            "map": old_map,
            "description": old_desc,
            "expect": new_map,
            "written_fill": fill,
        },
    )
    return [
        action(
            facts,
            "proxmox.mapping_put",
            target,
            f"set {node} -> {vf.address}{later}",
            {"id": mid, "map": new_map, "description": old_desc, "expect": old_map, "fill": fill},
            undo,
        )
    ]


def fill_actions(facts: PveFacts, m: PciMapping) -> list[Action]:
    """Complete this node's entry of a vfctl mapping the host now knows more about.

    An entry written before its VF existed may lack iommugroup/subsystem-id (older vfctl,
    or a host that could not tell then); a mapping someone else made is left alone.
    """
    if not m.managed:
        return []
    mid = m.id
    old_map = list(m.raw)
    new_map: list[str] = []
    changed: list[str] = []
    for raw in old_map:
        try:
            e = parse_map_entry(raw)
        except PropertyStringError:
            new_map.append(raw)
            continue
        if e.node == facts.node:
            filled = complete(e, facts.ids)
            if filled != e:
                changed.append(";".join(e.path))
                raw = format_map_entry(filled)
        new_map.append(raw)
    if not changed:
        return []
    target, desc = f"mapping {mid}", m.description
    undo = action(
        facts,
        "proxmox.mapping_put",
        target,
        "restore",
        {"id": mid, "map": old_map, "description": desc, "expect": new_map},
    )
    return [
        action(
            facts,
            "proxmox.mapping_put",
            target,
            f"complete {facts.node} -> {', '.join(changed)} (iommugroup/subsystem-id)",
            {"id": mid, "map": new_map, "description": desc, "expect": old_map},
            undo,
        )
    ]


def mapping_users(
    vms: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...],
    configs: Mapping[int, Mapping[str, Any]],
    current: Mapping[int, Mapping[str, Any]],
    mid: str,
) -> set[tuple[int, str]]:
    """(vmid, slot) of every VM whose config or running config uses mapping ``mid``."""
    users: set[tuple[int, str]] = set()
    for vm in vms:
        vmid = int(vm["vmid"])
        cfgs = [configs.get(vmid) or {}]
        if vm.get("status") == "running":
            cfgs.append(current.get(vmid) or {})
        for cfg in cfgs:
            for slot in SLOTS:
                v = cfg.get(slot)
                if not isinstance(v, str):
                    continue
                try:
                    if parse_hostpci(v).mapping == mid:
                        users.add((vmid, slot))
                except PropertyStringError:
                    continue
    return users


def mapping_cleanup(facts: PveFacts, mid: str, leaving: tuple[int, str] | None) -> list[Action]:
    """Delete mapping ``mid`` if vfctl made it and no VM but ``leaving`` uses it."""
    m = next((x for x in facts.mappings if x.id == mid), None)
    if m is None or not m.managed:
        return []
    if mapping_users(list(facts.vms), facts.configs, facts.current, mid) - {leaving}:
        return []
    old_map = list(m.raw)
    undo = action(
        facts,
        "proxmox.mapping_put",
        f"mapping {mid}",
        "re-create",
        {"id": mid, "map": old_map, "description": m.description, "expect": None},
    )
    return [
        action(
            facts,
            "proxmox.mapping_delete",
            f"mapping {mid}",
            "delete (unused)",
            {"id": mid, "expect": old_map},
            undo,
        )
    ]
