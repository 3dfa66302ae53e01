"""The ``proxmox.*`` ops: writes to VM configs and cluster mappings, as the engine runs them.

Every write re-reads what it changes and sends its ``digest``, so a concurrent change is
never overwritten: on a digest mismatch the op re-reads, re-decides and retries a bounded
number of times. Ops are idempotent (a rerun or a rollback of a half-done run is safe).
Op names and parameters are what journals hold: never rename them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from vfctl.backends.proxmox import ProxmoxBackend
from vfctl.backends.pve_client import PveApiError
from vfctl.backends.pve_hostpci import (
    SLOTS,
    PropertyStringError,
    format_map_entry,
    parse_map_entry,
)
from vfctl.backends.pve_mapping import held_addresses, slot_uses
from vfctl.backends.pve_mapping_plan import mapping_users
from vfctl.errors import BackendError, RefusedError
from vfctl.plan import Context, op

DIGEST_RETRIES = 5


def write_config(
    be: ProxmoxBackend,
    node: str,
    vmid: int,
    decide: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> bool:
    """Read, decide, write with the digest; re-read and retry on a digest mismatch."""
    for _ in range(DIGEST_RETRIES):
        cfg = be.config(node, vmid)
        change = decide(cfg)
        if change is None:
            return False
        try:
            be.api.put(be.cfg_path(node, vmid), digest=cfg.get("digest"), **change)
            return True
        except PveApiError as exc:
            if not exc.digest_mismatch:
                raise
    raise BackendError(
        f"VM {vmid} on {node}: its config changed under us "
        f"{DIGEST_RETRIES} times in a row (digest mismatch); nothing written"
    )


def note_pending(be: ProxmoxBackend, ctx: Context, node: str, vmid: int) -> None:
    """A running VM keeps the change pending: record it on the connection, warn once."""
    status = be.api.get(f"/nodes/{node}/qemu/{vmid}/status/current") or {}
    if status.get("status") != "running":
        return
    for p in be.pending_changes(vmid):
        entry = {
            "vm": vmid,
            "node": node,
            "key": p["key"],
            "pending": p.get("pending"),
            "delete": bool(p.get("delete")),
        }
        if entry not in be.pending_log:
            be.pending_log.append(entry)
            what = f"remove {p['key']}" if entry["delete"] else f"{p['key']}={p['pending']}"
            ctx.warnings.append(
                f"VM {vmid} is running: pending {what} (applies when the VM is stopped and started)"
            )


def hostpci_add(be: ProxmoxBackend, ctx: Context, p: Mapping[str, Any]) -> None:
    node, vmid, addr = str(p["node"]), int(p["vmid"]), str(p["address"])
    maps, mid, present = be.mappings(), p.get("mapping"), be.present()

    def decide(cfg: dict[str, Any]) -> dict[str, Any] | None:
        uses = slot_uses(cfg, maps, node, present, be.warn, f"VM {vmid}")
        if addr in held_addresses(uses) or (
            mid is not None and any(u.mapping == mid for u in uses)
        ):
            return None
        free = [s for s in SLOTS if s not in cfg]
        if not free:
            raise RefusedError(f"VM {vmid} on {node} has no free hostpci slot")
        slot = p["slot"] if p["slot"] in free else free[0]
        return {slot: p["value"]}

    if write_config(be, node, vmid, decide):
        note_pending(be, ctx, node, vmid)


def hostpci_remove(be: ProxmoxBackend, ctx: Context, p: Mapping[str, Any]) -> None:
    node, vmid, addr, mid = str(p["node"]), int(p["vmid"]), str(p["address"]), p.get("mapping")
    maps, present = be.mappings(), be.present()

    def decide(cfg: dict[str, Any]) -> dict[str, Any] | None:
        for u in slot_uses(cfg, maps, node, present, be.warn, f"VM {vmid}"):
            if (mid is not None and u.mapping == mid) or (u.mapping is None and u.exact == (addr,)):
                return {"delete": u.slot}
            if addr in u.exact:
                raise RefusedError(
                    f"{u.slot} of VM {vmid} on {node} now holds {u.value}; not removing it"
                )
        return None

    if write_config(be, node, vmid, decide):
        note_pending(be, ctx, node, vmid)


def _mapping_now(be: ProxmoxBackend, mid: str) -> Mapping[str, Any] | None:
    for m in be.api.get("/cluster/mapping/pci") or []:
        if m.get("id") == mid:
            return dict(be.api.get(f"/cluster/mapping/pci/{mid}") or m)
    return None


def fill_map(be: ProxmoxBackend, items: list[str], fill: str | None) -> list[str]:
    """This node's entry for ``fill`` completed from sysfs (at execution: the VF exists now)."""
    if fill is None:
        return items
    out: list[str] = []
    for raw in items:
        try:
            e = parse_map_entry(raw)
        except PropertyStringError:
            out.append(raw)
            continue
        if e.node == be.node and e.path == (fill,):
            raw = format_map_entry(be.complete(e))
        out.append(raw)
    return out


def map_matches(node: str, cur: list[str], expect: list[str], fill: str | None) -> bool:
    """``cur`` is ``expect``, except that this node's ``fill`` entry may have been completed.

    A planned entry leaves out what sysfs could not tell before the VF existed; the op
    that wrote it added those fields, so its undo must accept them (and only them).
    """
    if cur == expect:
        return True
    if fill is None or len(cur) != len(expect):
        return False
    for c, x in zip(cur, expect, strict=True):
        if c == x:
            continue
        try:
            ce, xe = parse_map_entry(c), parse_map_entry(x)
        except PropertyStringError:
            return False
        if xe.node != node or xe.path != (fill,):
            return False
        filled = replace(
            xe,
            iommugroup=ce.iommugroup if xe.iommugroup is None else xe.iommugroup,
            subsystem_id=ce.subsystem_id if xe.subsystem_id is None else xe.subsystem_id,
        )
        if ce != filled:
            return False
    return True


def mapping_put(be: ProxmoxBackend, p: Mapping[str, Any]) -> None:
    """``fill``: complete that VF's entry from sysfs first; ``written_fill``: undo of such a put."""
    mid, expect = str(p["id"]), p.get("expect")
    want = fill_map(be, [str(x) for x in p["map"]], p.get("fill"))
    cur = _mapping_now(be, mid)
    cur_map = None if cur is None else [str(x) for x in cur.get("map") or []]
    if cur_map == want:
        return
    if cur_map is None or expect is None:
        ok = cur_map is None and expect is None
    else:
        ok = map_matches(be.node, cur_map, [str(x) for x in expect], p.get("written_fill"))
    if not ok:
        raise RefusedError(f"PCI mapping {mid} changed since it was planned; not writing it")
    extra = {"description": p["description"]} if p.get("description") else {}
    if cur is None:
        be.api.post("/cluster/mapping/pci", id=mid, map=want, **extra)
    else:
        be.api.put(f"/cluster/mapping/pci/{mid}", map=want, digest=cur.get("digest"), **extra)


def live_mapping_users(be: ProxmoxBackend, mid: str) -> set[tuple[int, str]]:
    """(vmid, slot) of every VM in the cluster that uses mapping ``mid`` now, or pending."""
    vms = be.vms()
    configs = {int(v["vmid"]): be.config(str(v["node"]), int(v["vmid"])) for v in vms}
    current = {
        int(v["vmid"]): be.current(str(v["node"]), int(v["vmid"]))
        for v in vms
        if v.get("status") == "running"
    }
    return mapping_users(vms, configs, current, mid)


def mapping_delete(be: ProxmoxBackend, p: Mapping[str, Any]) -> None:
    mid = str(p["id"])
    cur = _mapping_now(be, mid)
    if cur is None:
        return
    cur_map = [str(x) for x in cur.get("map") or []]
    if not map_matches(be.node, cur_map, list(p["expect"]), p.get("written_fill")):
        raise RefusedError(f"PCI mapping {mid} changed since it was planned; not deleting it")
    users = live_mapping_users(be, mid)
    if users:
        vm, slot = sorted(users)[0]
        raise RefusedError(f"PCI mapping {mid} is still used by VM {vm} ({slot})")
    be.api.delete(f"/cluster/mapping/pci/{mid}")


def backend_of(ctx: Context, p: Mapping[str, Any]) -> ProxmoxBackend:
    """The run's instance for this connection (the one that planned, when the session has it)."""
    be = ctx.backend("proxmox", p["conn"])
    if not isinstance(be, ProxmoxBackend):
        raise BackendError("the proxmox backend factory returned something else")
    return be


@op("proxmox.hostpci_add")
def _op_hostpci_add(ctx: Context, p: Mapping[str, Any]) -> None:
    hostpci_add(backend_of(ctx, p), ctx, p)


@op("proxmox.hostpci_remove")
def _op_hostpci_remove(ctx: Context, p: Mapping[str, Any]) -> None:
    hostpci_remove(backend_of(ctx, p), ctx, p)


@op("proxmox.mapping_put")
def _op_mapping_put(ctx: Context, p: Mapping[str, Any]) -> None:
    mapping_put(backend_of(ctx, p), p)


@op("proxmox.mapping_delete")
def _op_mapping_delete(ctx: Context, p: Mapping[str, Any]) -> None:
    mapping_delete(backend_of(ctx, p), p)
