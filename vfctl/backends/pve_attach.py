"""Proxmox attach/detach planning: pure functions of (``PveFacts``, request) -> actions.

Which hostpciN slot, raw ``host=`` (root@pam) or a cluster mapping (a token), pcie on q35,
idempotency (already there: nothing), --force moves from another VM, pools (PVE picks the
entry at start, so a pool's entries are not handed out singly). Tests call these with
literal facts; ``proxmox.ProxmoxBackend`` fetches the facts and merges the warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.backends.pve_hostpci import (
    CONFIGID,
    SLOTS,
    PropertyStringError,
    format_hostpci,
    full,
)
from vfctl.backends.pve_mapping import (
    PciMapping,
    SlotUse,
    held_addresses,
    referenced_mappings,
)
from vfctl.backends.pve_mapping_plan import (
    fill_actions,
    mapping_actions,
    mapping_cleanup,
)
from vfctl.backends.pve_plan import (
    Notes,
    Planned,
    PveFacts,
    action,
    claims,
    hostpci_value,
    mapping_id_for,
    resolve_here,
    unfit,
    uses_of,
)
from vfctl.errors import RefusedError, UsageError
from vfctl.plan import Action


def plan_attach(facts: PveFacts, req: AttachRequest, notes: Notes | None = None) -> Planned:
    """Actions that put the VF into the VM (none when it is already there), and warnings.

    ``notes``: where warnings go, so a caller keeps those made before a refusal too.
    """
    notes = Notes() if notes is None else notes
    return Planned(_attach(facts, req, notes), notes)


def plan_detach(facts: PveFacts, req: AttachRequest, notes: Notes | None = None) -> Planned:
    """Actions that take the VF out of the VM (a leftover vfctl mapping goes too), and warnings."""
    notes = Notes() if notes is None else notes
    return Planned(_detach(facts, req, notes), notes)


def _attach(f: PveFacts, req: AttachRequest, notes: Notes) -> list[Action]:
    vm = resolve_here(f.vms, f.node, req.vm)
    vmid, addr, node = int(vm["vmid"]), req.vf.address, f.node
    cfg = f.configs.get(vmid) or {}
    by_id = {m.id: m for m in f.mappings}
    opts = req.options
    mid_opt = opts.get("mapping")
    if mid_opt is not None and not full(CONFIGID, str(mid_opt)):
        raise UsageError(
            f"mapping id {mid_opt!r} is invalid: a letter, then letters, digits, '-' or '_'"
        )
    uses = uses_of(f, cfg, vmid, notes)
    held = held_addresses(uses)
    refs = referenced_mappings(uses)
    want_pool = by_id.get(str(mid_opt)) if mid_opt is not None else None
    if want_pool is not None and want_pool.is_pool(node):
        _check_pool_member(f, want_pool, addr)
        if want_pool.id in refs:
            return []  # the VM already draws from this pool
    elif addr in held:
        via = next((u.mapping for u in uses if u.slot == held[addr]), None)
        m = by_id.get(str(via)) if via is not None else None
        return [] if m is None else fill_actions(f, m)
    _check_pool_reserved(f, req, mid_opt, notes)
    _check_held(req, vmid)
    actions: list[Action] = []
    for other in f.vms:
        if other.get("node") != node or int(other["vmid"]) == vmid:
            continue
        ocfg = f.configs.get(int(other["vmid"])) or {}
        slot = held_addresses(uses_of(f, ocfg, int(other["vmid"]), notes)).get(addr)
        if slot is None:
            continue
        if not req.force:
            raise RefusedError(
                f"VF {addr} is already in VM {other['vmid']} "
                f"({other.get('name')}) as {slot} on {node}; "
                "use --force to move it",
                override="--force",
            )
        actions += _detach_actions(f, other, ocfg, addr, False, notes)

    h = hostpci_value(node, cfg, vmid, opts, f.version, notes)
    if want_pool is not None and want_pool.is_pool(node):
        h = replace(h, mapping=want_pool.id)
        notes.warn(
            f"VM {vmid} draws from pool {want_pool.id}: at start PVE gives it the first "
            f"free entry of the pool, not necessarily {addr}"
        )
    elif mid_opt or not f.is_root:
        mid = str(mid_opt or mapping_id_for(req.pf, req.vf))
        actions += mapping_actions(f, mid, req)
        h = replace(h, mapping=mid)
    else:
        h = replace(h, host=(addr,))
    # slots earlier requests of the same plan (a profile) take
    taken = {**cfg, **dict.fromkeys(claims(req.planned).get(vmid, ()), "")}
    free = [s for s in SLOTS if s not in taken]
    if opts.get("slot") is not None:  # a profile may pin the slot (hostpciN)
        want = f"hostpci{int(opts['slot'])}"
        if want in taken:
            raise RefusedError(
                f"VM {vmid} on {node}: {want} is already used "
                f"({taken[want] or 'by another VF of this profile'})"
            )
        free = [want]
    if not free:
        raise RefusedError(
            f"VM {vmid} on {node} has no free hostpci slot "
            f"(hostpci0..hostpci{len(SLOTS) - 1} all used)"
        )
    try:
        value = format_hostpci(h)
    except PropertyStringError as exc:
        raise unfit(addr, exc) from None
    p = {"node": node, "vmid": vmid, "address": addr, "mapping": h.mapping}
    where = f"vm{vmid} {free[0]}"
    slot_p = {**p, "slot": free[0], "value": value}
    undo = action(f, "proxmox.hostpci_remove", where, f"remove {value}", slot_p)
    actions.append(action(f, "proxmox.hostpci_add", where, f"add {value}", slot_p, undo))
    if vm.get("status") == "running":
        notes.note(
            f"VM {vmid} is running: PVE does not hot-plug hostpci devices, "
            "the change stays pending until the VM is stopped and started"
        )
    return actions


def _check_pool_member(f: PveFacts, m: PciMapping, addr: str) -> None:
    if addr in {a for alt in m.alternatives(f.node, f.present) for a in alt}:
        return
    how = (
        "vfctl does not add entries to a pool it did not create: add it in PVE "
        f"(Datacenter > Resource Mappings, or pvesh set /cluster/mapping/pci/{m.id})"
        if not m.managed
        else "add it to the pool first"
    )
    raise RefusedError(
        f"VF {addr} is not an entry of pool {m.id} on {f.node}; {how}, "
        "or attach it without --mapping"
    )


def _check_pool_reserved(f: PveFacts, req: AttachRequest, mid_opt: Any, notes: Notes) -> None:
    """A pool's entries are PVE's to hand out: refuse them to a VM outside the pool."""
    addr = req.vf.address
    for pool in f.pools:
        if pool.mapping.id == mid_opt or addr not in pool.addresses:
            continue
        users = ", ".join(pool.vms) or "no VM yet"
        if pool.mapping.managed and req.force:
            notes.warn(f"VF {addr} leaves pool {pool.mapping.id} (used by {users}) by --force")
            continue
        todo = (
            "--force to take it anyway"
            if pool.mapping.managed
            else "vfctl never edits a mapping it did not create: remove the entry from "
            f"mapping {pool.mapping.id} in PVE first, or attach the pool with "
            f"--mapping {pool.mapping.id}"
        )
        raise RefusedError(
            f"VF {addr} is an entry of PCI mapping {pool.mapping.id}, a pool on "
            f"{f.node} used by {users}: PVE gives it to those VMs at start; {todo}"
        )


def _check_held(req: AttachRequest, vmid: int) -> None:
    hb = req.vf.held_by
    if hb is None or hb.vm == f"vm{vmid}" or req.force:
        return
    raise RefusedError(
        f"VF {req.vf.address} is held by {hb.describe()} "
        f"(/dev/vfio/{req.vf.iommu_group} or a PVE reservation); use --force to "
        "change the configs anyway",
        override="--force",
    )


def _detach(f: PveFacts, req: AttachRequest, notes: Notes) -> list[Action]:
    vm = resolve_here(f.vms, f.node, req.vm)
    vmid, addr = int(vm["vmid"]), req.vf.address
    cfg = f.configs.get(vmid) or {}
    uses = uses_of(f, cfg, vmid, notes)
    mid_opt = req.options.get("mapping")
    pooled = [u for u in uses if u.mapping is not None and len(u.alternatives) > 1]
    if mid_opt is not None and any(u.mapping == mid_opt for u in pooled):
        actions: list[Action] = []
        for u in pooled:
            if u.mapping == mid_opt:
                actions += _remove_slot(f, vm, u, addr, True, notes)
        return actions
    if addr not in held_addresses(uses):
        for u in pooled:
            if addr in u.candidates:
                raise RefusedError(
                    f"VM {vmid} draws from pool {u.mapping} ({u.slot}); PVE picks the entry "
                    f"at start, so {addr} is not the VM's to detach alone: detach the pool "
                    f"with --mapping {u.mapping}"
                )
        # a mapping vfctl made may outlive a pending delete on a running VM: clean up now
        mid = str(mid_opt or mapping_id_for(req.pf, req.vf))
        return mapping_cleanup(f, mid, None)
    return _detach_actions(f, vm, cfg, addr, True, notes)


def _detach_actions(
    f: PveFacts,
    vm: Mapping[str, Any],
    cfg: Mapping[str, Any],
    addr: str,
    remove_mapping: bool,
    notes: Notes,
) -> list[Action]:
    vmid = int(vm["vmid"])
    actions: list[Action] = []
    for u in uses_of(f, cfg, vmid, notes):
        if addr not in u.exact:
            continue
        if len(u.exact) > 1:
            raise RefusedError(
                f"{u.slot} of VM {vmid} on {f.node} passes {addr} together "
                f"with other functions ({u.value}); change it by hand"
            )
        actions += _remove_slot(f, vm, u, addr, remove_mapping, notes)
    return actions


def _remove_slot(
    f: PveFacts,
    vm: Mapping[str, Any],
    u: SlotUse,
    addr: str,
    remove_mapping: bool,
    notes: Notes,
) -> list[Action]:
    vmid, slot, value = int(vm["vmid"]), u.slot, u.value
    p = {
        "node": f.node,
        "vmid": vmid,
        "address": addr,
        "mapping": u.mapping,
        "slot": slot,
        "value": value,
    }
    where = f"vm{vmid} {slot}"
    undo = action(f, "proxmox.hostpci_add", where, f"add {value}", p)
    actions = [action(f, "proxmox.hostpci_remove", where, f"remove {value}", p, undo)]
    # the slot is in a running VM's current config: its mapping stays until a restart
    live = vm.get("status") == "running" and slot in (f.current.get(vmid) or {})
    if live:  # a pending add that never went live just goes away
        notes.warn(
            f"VM {vmid} is running: removing {slot} stays pending "
            "until the VM is stopped and started"
        )
    if remove_mapping and u.mapping is not None and not live:
        actions += mapping_cleanup(f, u.mapping, (vmid, slot))
    return actions
