"""Proxmox VE backend: inventory of hostpciN devices, and attach/detach as journaled ops.

Policy lives here (which slot, raw ``host=`` vs cluster mapping, pcie/q35, idempotency,
--force moves); ``pve_hostpci`` only converts strings, ``pve_client`` only talks to the API.
Every write re-reads the VM config and sends its ``digest``, so a concurrent change is never
overwritten: on a digest mismatch the op re-reads, re-decides and retries a bounded number of
times.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.backends.pve_client import PveApi, PveApiError, PveSettings, settings_from_env
from vfctl.backends.pve_hostpci import (
    CONFIGID,
    SLOTS,
    HostPci,
    MapEntry,
    PropertyStringError,
    format_hostpci,
    format_map_entry,
    full,
    parse_hostpci,
    parse_map_entry,
    vendor_device,
)
from vfctl.backends.pve_mapping import (
    MANAGED_PREFIX,
    PciMapping,
    Pool,
    SlotUse,
    held_addresses,
    parse_mappings,
    referenced_mappings,
    slot_uses,
)
from vfctl.errors import BackendError, HostError, NotFoundError, RefusedError, UsageError
from vfctl.host.open import open_host
from vfctl.host.sysfs import PCI_DEVICES, Host
from vfctl.model import PF, VF, Attachment, PoolRef
from vfctl.plan import Action, Context, op

DIGEST_RETRIES = 5
_VMREF = re.compile(r"(?:vm)?([1-9][0-9]{2,8})", re.IGNORECASE)
_GROUP = re.compile(r"[0-9]{1,9}")
KEEP_DRIVER_SINCE = (9, 1)
# pending hostpci changes this process wrote, keyed by connection: the ops may run on another
# instance than the one the CLI planned with (the engine's backend factory makes its own)
_PENDING: list[tuple[str, dict[str, Any]]] = []


def mapping_id_for(pf: PF, vf: VF) -> str:
    """Stable id from PF and VF (``vf-eth2-3``), squeezed into the pve-configid pattern."""
    base = (pf.netdev or pf.address).lower()
    return re.sub(r"[^a-z0-9_-]", "-", f"vf-{base}-{vf.index}")


def is_q35(machine: Any) -> bool:
    """PVE machine strings: ``q35``, ``pc-q35-9.0+pve1``, ``pc-i440fx-…``; unset means i440fx."""
    return isinstance(machine, str) and "q35" in machine


def resolve_vm(resources: list[Mapping[str, Any]], spec: str) -> Mapping[str, Any]:
    """``101``/``vm101``/name -> the one qemu resource; NotFound (3) or ambiguous (2)."""
    qemu = [r for r in resources if r.get("type") == "qemu"]
    m = _VMREF.fullmatch(spec.strip())
    hits = {int(r["vmid"]): r for r in qemu if m and int(r["vmid"]) == int(m[1])}
    hits.update({int(r["vmid"]): r for r in qemu if r.get("name") == spec})
    if not hits:
        raise NotFoundError(f"VM {spec!r} not found in the cluster's VM list")
    if len(hits) > 1:
        which = ", ".join(f"{v} ({r.get('name')}) on {r.get('node')}" for v, r in hits.items())
        raise UsageError(f"VM {spec!r} is ambiguous: {which}; use the VM id")
    return next(iter(hits.values()))


def _unfit(addr: str, exc: Exception) -> HostError:
    """A value read from sysfs that PVE's format refuses: never written, never escaped."""
    return HostError(
        f"VF {addr}: a value read from sysfs does not fit PVE's format ({exc}); nothing written"
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


class ProxmoxBackend:
    name = "proxmox"

    def __init__(self, api: PveApi, settings: PveSettings, host: Host | None = None) -> None:
        self.api = api
        self.settings = settings
        self.node = settings.node
        self.host = host
        self.warnings: list[str] = []
        self._node_checked = False
        self._pools: list[Pool] | None = None

    @classmethod
    def from_env(
        cls,
        node: str | None,
        ca: str | None,
        insecure: bool,
        env: Mapping[str, str],
        root: str | None = None,
    ) -> ProxmoxBackend:
        settings = settings_from_env(node, ca, insecure, env)
        host = open_host(root or env.get("VFCTL_ROOT") or "/")
        return cls(PveApi(settings, env), settings, host)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        root: str | None = None,
    ) -> ProxmoxBackend:
        """Reconnect from ``params()`` (journal rollback in a new process); secret from env."""
        env = dict(os.environ) if env is None else env
        settings = PveSettings.from_params(params)
        host = open_host(root or env.get("VFCTL_ROOT") or "/")
        return cls(PveApi(settings, env), settings, host)

    def params(self) -> dict[str, Any]:
        return self.settings.to_params()

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Changes written to running VMs in this process that wait for a stop and start."""
        key = repr(sorted(self.params().items()))
        return [e for k, e in _PENDING if k == key]

    # ---- reads ----------------------------------------------------------------------------

    def _cfg_path(self, node: str, vmid: int) -> str:
        return f"/nodes/{node}/qemu/{vmid}/config"

    def _vms(self) -> list[Mapping[str, Any]]:
        res = self.api.get("/cluster/resources", type="vm") or []
        return [r for r in res if r.get("type") == "qemu"]

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _mappings(self) -> list[Mapping[str, Any]]:
        """The API's mapping list as it came (for code that rewrites entries verbatim)."""
        return list(self.api.get("/cluster/mapping/pci") or [])

    def mappings(self) -> list[PciMapping]:
        """Every mapping, typed, with every entry PVE accepts (invalid ones warned, skipped)."""
        return parse_mappings(self._mappings(), self._warn)

    def _present(self) -> frozenset[str]:
        """This node's PCI addresses: what a function-less id expands to (as PVE's lspci does)."""
        if self.host is None:
            return frozenset()
        return frozenset(self.host.listdir(PCI_DEVICES))

    def _uses(
        self, cfg: Mapping[str, Any], mappings: list[PciMapping], vmid: int | str
    ) -> list[SlotUse]:
        return slot_uses(cfg, mappings, self.node, self._present(), self._warn, f"VM {vmid}")

    def _held(
        self, cfg: Mapping[str, Any], mappings: list[PciMapping], vmid: int
    ) -> dict[str, str]:
        return held_addresses(self._uses(cfg, mappings, vmid))

    def _config(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(self.api.get(self._cfg_path(node, vmid)) or {})

    def _check_node(self) -> None:
        if self._node_checked:
            return
        nodes = [str(n.get("node")) for n in self.api.get("/nodes") or []]
        if self.node not in nodes:
            raise NotFoundError(
                f"PVE node {self.node!r} is not in the cluster "
                f"({', '.join(sorted(nodes)) or 'none'}); "
                "set --pve-node or VFCTL_PVE_NODE"
            )
        self._node_checked = True

    def _resolve(self, spec: str) -> Mapping[str, Any]:
        self._check_node()
        vm = resolve_vm(self._vms(), spec)
        if vm.get("node") != self.node:
            raise RefusedError(
                f"VM {vm['vmid']} ({vm.get('name')}) is on node {vm.get('node')}, "
                f"but the VFs are on node {self.node}"
            )
        return vm

    def attachments(self) -> dict[str, list[Attachment]]:
        """Every address held by a VM on this node; running VMs' pending changes set live/config."""
        self._check_node()
        mappings = self.mappings()
        out: dict[str, list[Attachment]] = {}
        users: dict[str, set[str]] = {}
        for vm in self._vms():
            if vm.get("node") != self.node:
                continue
            vmid = int(vm["vmid"])
            cfg = self._config(self.node, vmid)
            uses = self._uses(cfg, mappings, vmid)
            held = held_addresses(uses)
            live_held: dict[str, str] = {}
            running = vm.get("status") == "running"
            if running:
                pend = self.api.get(f"/nodes/{self.node}/qemu/{vmid}/pending") or []
                current = {p["key"]: p["value"] for p in pend if "value" in p}
                live_uses = self._uses(current, mappings, vmid)
                live_held = held_addresses(live_uses)
                uses = uses + live_uses
            for mid in referenced_mappings(uses):
                users.setdefault(mid, set()).add(f"vm{vmid}")
            for addr in sorted(set(held) | set(live_held)):
                out.setdefault(addr, []).append(
                    Attachment(
                        backend="proxmox",
                        vm=f"vm{vmid}",
                        vm_id=str(vmid),
                        element=held.get(addr) or live_held[addr],
                        live=addr in live_held,
                        config=addr in held,
                    )
                )
        present = self._present()
        self._pools = [
            Pool(
                m,
                self.node,
                m.alternatives(self.node, present),
                tuple(sorted(users.get(m.id, ()), key=lambda v: int(v[2:]))),
            )
            for m in mappings
            if m.is_pool(self.node)
        ]
        return out

    def mapping_pools(self) -> list[Pool]:
        """This node's pools (multi-entry mappings) and the VMs that draw from each."""
        if self._pools is None:
            self.attachments()
        return list(self._pools or [])

    def pool_refs(self) -> dict[str, PoolRef]:
        """VF address -> its pool, for the inventory (``pool`` / ``pool_vms`` of a VF)."""
        out: dict[str, PoolRef] = {}
        for p in self._pools or []:
            for a in p.addresses:
                out.setdefault(a, PoolRef(p.mapping.id, p.vms, p.mapping.managed))
        return out

    def pending_changes(self, vmid: int) -> list[dict[str, Any]]:
        """hostpci entries of ``/pending`` that wait for the next VM start."""
        pend = self.api.get(f"/nodes/{self.node}/qemu/{vmid}/pending") or []
        return [
            dict(p)
            for p in pend
            if str(p.get("key", "")).startswith("hostpci") and ("pending" in p or p.get("delete"))
        ]

    # ---- planning -------------------------------------------------------------------------

    def _action(
        self, opname: str, target: str, detail: str, p: dict[str, Any], undo: Action | None = None
    ) -> Action:
        return Action(opname, target, detail, {"conn": self.params(), **p}, undo)

    def plan_attach(self, req: AttachRequest) -> list[Action]:
        vm = self._resolve(req.vm)
        vmid, addr = int(vm["vmid"]), req.vf.address
        cfg = self._config(self.node, vmid)
        mappings = self.mappings()
        by_id = {m.id: m for m in mappings}
        opts = req.options
        mid_opt = opts.get("mapping")
        if mid_opt is not None and not full(CONFIGID, str(mid_opt)):
            raise UsageError(
                f"mapping id {mid_opt!r} is invalid: a letter, then letters, digits, '-' or '_'"
            )
        uses = self._uses(cfg, mappings, vmid)
        held = held_addresses(uses)
        refs = referenced_mappings(uses)
        want_pool = by_id.get(str(mid_opt)) if mid_opt is not None else None
        if want_pool is not None and want_pool.is_pool(self.node):
            self._check_pool_member(want_pool, addr)
            if want_pool.id in refs:
                return []  # the VM already draws from this pool
        elif addr in held:
            via = next((u.mapping for u in uses if u.slot == held[addr]), None)
            m = by_id.get(str(via)) if via is not None else None
            return [] if m is None else self._fill_actions(m)
        self._check_pool_reserved(req, by_id, mid_opt)
        self._check_held(req, vmid)
        actions: list[Action] = []
        for other in self._vms():
            if other.get("node") != self.node or int(other["vmid"]) == vmid:
                continue
            ocfg = self._config(self.node, int(other["vmid"]))
            slot = self._held(ocfg, mappings, int(other["vmid"])).get(addr)
            if slot is None:
                continue
            if not req.force:
                raise RefusedError(
                    f"VF {addr} is already in VM {other['vmid']} "
                    f"({other.get('name')}) as {slot} on {self.node}; "
                    "use --force to move it",
                    override="--force",
                )
            actions += self._detach_actions(other, ocfg, addr, mappings, remove_mapping=False)

        h = self._hostpci_value(cfg, vmid, opts)
        if want_pool is not None and want_pool.is_pool(self.node):
            h = replace(h, mapping=want_pool.id)
            self._warn(
                f"VM {vmid} draws from pool {want_pool.id}: at start PVE gives it the first "
                f"free entry of the pool, not necessarily {addr}"
            )
        elif mid_opt or not self.api.is_root:
            mid = str(mid_opt or mapping_id_for(req.pf, req.vf))
            actions += self._mapping_actions(mid, req, mappings)
            h = replace(h, mapping=mid)
        else:
            h = replace(h, host=(addr,))
        # slots earlier requests of the same plan (a profile) take: {vmid: [hostpciN, ...]}
        taken = {**cfg, **dict.fromkeys((opts.get("planned_slots") or {}).get(vmid, ()), "")}
        free = [s for s in SLOTS if s not in taken]
        if opts.get("slot") is not None:  # a profile may pin the slot (hostpciN)
            want = f"hostpci{int(opts['slot'])}"
            if want in taken:
                raise RefusedError(
                    f"VM {vmid} on {self.node}: {want} is already used "
                    f"({taken[want] or 'by another VF of this profile'})"
                )
            free = [want]
        if not free:
            raise RefusedError(
                f"VM {vmid} on {self.node} has no free hostpci slot "
                f"(hostpci0..hostpci{len(SLOTS) - 1} all used)"
            )
        try:
            value = format_hostpci(h)
        except PropertyStringError as exc:
            raise _unfit(addr, exc) from None
        p = {"node": self.node, "vmid": vmid, "address": addr, "mapping": h.mapping}
        undo = self._action(
            "proxmox.hostpci_remove",
            f"vm{vmid} {free[0]}",
            f"remove {value}",
            {**p, "slot": free[0], "value": value},
        )
        actions.append(
            self._action(
                "proxmox.hostpci_add",
                f"vm{vmid} {free[0]}",
                f"add {value}",
                {**p, "slot": free[0], "value": value},
                undo,
            )
        )
        if vm.get("status") == "running":
            self.warnings.append(
                f"VM {vmid} is running: PVE does not hot-plug hostpci devices, "
                "the change stays pending until the VM is stopped and started"
            )
        return actions

    def _hostpci_value(self, cfg: Mapping[str, Any], vmid: int, opts: Mapping[str, Any]) -> HostPci:
        """The raw-device value with pcie/rombar/driver decided (the caller may swap host for mapping)."""
        want_pcie = opts.get("pcie")
        q35 = is_q35(cfg.get("machine"))
        machine = cfg.get("machine") or "i440fx (default)"
        if want_pcie is True and not q35:
            raise UsageError(
                f"--pcie needs a q35 machine type; VM {vmid} on {self.node} uses {machine}"
            )
        if want_pcie is None and not q35:
            self.warnings.append(
                f"VM {vmid} uses machine type {machine}: attaching as a "
                "conventional PCI device (pcie=1 needs q35)"
            )
        pcie = True if (want_pcie is None and q35) or want_pcie is True else None
        rombar = opts.get("rombar")
        driver = None
        if opts.get("driver_keep"):
            ver = str((self.api.get("/version") or {}).get("version", "0"))
            if _version_tuple(ver) < KEEP_DRIVER_SINCE:
                raise UsageError(f"driver=keep needs PVE 9.1 or later; {self.node} runs {ver}")
            driver = "keep"
        return HostPci(
            host=(), pcie=pcie, rombar=None if rombar is None else bool(rombar), driver=driver
        )

    def _subsystem_id(self, addr: str) -> str | None:
        """``vvvv:dddd`` from sysfs, or None when absent or not what the kernel writes.

        sysfs values go into a property string: a crafted ``subsystem_vendor`` must never
        add keys to a mapping entry, so anything but 4 hex digits each is left out.
        """
        if self.host is None:
            return None
        sv = self.host.read_opt(f"{PCI_DEVICES}/{addr}/subsystem_vendor")
        sd = self.host.read_opt(f"{PCI_DEVICES}/{addr}/subsystem_device")
        return vendor_device(sv, sd)

    def _iommu_group(self, addr: str) -> int | None:
        if self.host is None:
            return None
        name = self.host.link_name(f"{PCI_DEVICES}/{addr}/iommu_group")
        return int(name) if name and full(_GROUP, name) else None

    def _check_pool_member(self, m: PciMapping, addr: str) -> None:
        if addr in {a for alt in m.alternatives(self.node, self._present()) for a in alt}:
            return
        how = (
            "vfctl does not add entries to a pool it did not create: add it in PVE "
            f"(Datacenter > Resource Mappings, or pvesh set /cluster/mapping/pci/{m.id})"
            if not m.managed
            else "add it to the pool first"
        )
        raise RefusedError(
            f"VF {addr} is not an entry of pool {m.id} on {self.node}; {how}, "
            "or attach it without --mapping"
        )

    def _check_pool_reserved(
        self, req: AttachRequest, by_id: Mapping[str, PciMapping], mid_opt: Any
    ) -> None:
        """A pool's entries are PVE's to hand out: refuse them to a VM outside the pool."""
        addr = req.vf.address
        for pool in self.mapping_pools():
            if pool.mapping.id == mid_opt or addr not in pool.addresses:
                continue
            users = ", ".join(pool.vms) or "no VM yet"
            if pool.mapping.managed and req.force:
                self._warn(f"VF {addr} leaves pool {pool.mapping.id} (used by {users}) by --force")
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
                f"{self.node} used by {users}: PVE gives it to those VMs at start; {todo}"
            )

    def _check_held(self, req: AttachRequest, vmid: int) -> None:
        hb = req.vf.held_by
        if hb is None or hb.vm == f"vm{vmid}" or req.force:
            return
        raise RefusedError(
            f"VF {req.vf.address} is held by {hb.describe()} "
            f"(/dev/vfio/{req.vf.iommu_group} or a PVE reservation); use --force to "
            "change the configs anyway",
            override="--force",
        )

    def _complete(self, e: MapEntry) -> MapEntry:
        """``e`` with a missing iommugroup/subsystem-id taken from the host's sysfs, if it has them."""
        if len(e.path) != 1:
            return e
        return replace(
            e,
            iommugroup=e.iommugroup if e.iommugroup is not None else self._iommu_group(e.path[0]),
            subsystem_id=e.subsystem_id or self._subsystem_id(e.path[0]),
        )

    def _fill_map(self, items: list[str], fill: str | None) -> list[str]:
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
            if e.node == self.node and e.path == (fill,):
                raw = format_map_entry(self._complete(e))
            out.append(raw)
        return out

    def _map_matches(self, cur: list[str], expect: list[str], fill: str | None) -> bool:
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
            if xe.node != self.node or xe.path != (fill,):
                return False
            filled = replace(
                xe,
                iommugroup=ce.iommugroup if xe.iommugroup is None else xe.iommugroup,
                subsystem_id=ce.subsystem_id if xe.subsystem_id is None else xe.subsystem_id,
            )
            if ce != filled:
                return False
        return True

    def _mapping_actions(
        self, mid: str, req: AttachRequest, mappings: list[PciMapping]
    ) -> list[Action]:
        vf = req.vf
        vid = vendor_device(vf.vendor_id, vf.device_id)
        if vid is None:
            raise HostError(
                f"VF {vf.address}: sysfs vendor/device {vf.vendor_id!r}:{vf.device_id!r} is not "
                "two 4-digit hex ids; not writing it into a PCI mapping"
            )
        entry = self._complete(
            MapEntry(node=self.node, path=(vf.address,), id=vid, iommugroup=vf.iommu_group)
        )
        try:
            format_map_entry(entry)
        except PropertyStringError as exc:
            raise _unfit(vf.address, exc) from None
        # a VF this run creates: sysfs cannot tell yet, the op reads it when it writes
        fill = vf.address if entry.iommugroup is None or entry.subsystem_id is None else None
        later = " (iommugroup/subsystem-id read at execution)" if fill else ""
        existing = next((m for m in mappings if m.id == mid), None)
        target = f"mapping {mid}"
        if existing is None:
            new_map = [format_map_entry(entry)]
            desc = f"{MANAGED_PREFIX} {req.pf.netdev or req.pf.address} VF {vf.index}"
            undo = self._action(
                "proxmox.mapping_delete",
                target,
                "delete",
                {"id": mid, "expect": new_map, "written_fill": fill},
            )
            return [
                self._action(
                    "proxmox.mapping_put",
                    target,
                    f"create: {self.node} -> {vf.address}{later}",
                    {"id": mid, "map": new_map, "description": desc, "expect": None, "fill": fill},
                    undo,
                )
            ]
        mine = existing.on(self.node)
        if len(mine) == 1 and mine[0].path == (vf.address,):
            return self._fill_actions(existing)
        if not existing.managed:
            where = (
                f"maps node {self.node} to {';'.join(mine[0].path)}"
                if mine
                else f"has no entry for node {self.node}"
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
                if parse_map_entry(raw).node == self.node:
                    continue
            except PropertyStringError:
                pass
            keep.append(raw)
        new_map = [*keep, format_map_entry(entry)]
        old_desc = existing.description
        undo = self._action(
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
            self._action(
                "proxmox.mapping_put",
                target,
                f"set {self.node} -> {vf.address}{later}",
                {
                    "id": mid,
                    "map": new_map,
                    "description": old_desc,
                    "expect": old_map,
                    "fill": fill,
                },
                undo,
            )
        ]

    def _fill_actions(self, m: PciMapping) -> list[Action]:
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
            if e.node == self.node:
                full = self._complete(e)
                if full != e:
                    changed.append(";".join(e.path))
                    raw = format_map_entry(full)
            new_map.append(raw)
        if not changed:
            return []
        target, desc = f"mapping {mid}", m.description
        undo = self._action(
            "proxmox.mapping_put",
            target,
            "restore",
            {"id": mid, "map": old_map, "description": desc, "expect": new_map},
        )
        return [
            self._action(
                "proxmox.mapping_put",
                target,
                f"complete {self.node} -> {', '.join(changed)} (iommugroup/subsystem-id)",
                {"id": mid, "map": new_map, "description": desc, "expect": old_map},
                undo,
            )
        ]

    def plan_detach(self, req: AttachRequest) -> list[Action]:
        vm = self._resolve(req.vm)
        vmid, addr = int(vm["vmid"]), req.vf.address
        cfg = self._config(self.node, vmid)
        mappings = self.mappings()
        uses = self._uses(cfg, mappings, vmid)
        mid_opt = req.options.get("mapping")
        pooled = [u for u in uses if u.mapping is not None and len(u.alternatives) > 1]
        if mid_opt is not None and any(u.mapping == mid_opt for u in pooled):
            actions: list[Action] = []
            for u in pooled:
                if u.mapping == mid_opt:
                    actions += self._remove_slot(vm, u, addr, mappings, remove_mapping=True)
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
            return self._mapping_cleanup(mid, mappings, None)
        return self._detach_actions(vm, cfg, addr, mappings, remove_mapping=True)

    def _detach_actions(
        self,
        vm: Mapping[str, Any],
        cfg: Mapping[str, Any],
        addr: str,
        mappings: list[PciMapping],
        remove_mapping: bool,
    ) -> list[Action]:
        vmid = int(vm["vmid"])
        actions: list[Action] = []
        for u in self._uses(cfg, mappings, vmid):
            if addr not in u.exact:
                continue
            if len(u.exact) > 1:
                raise RefusedError(
                    f"{u.slot} of VM {vmid} on {self.node} passes {addr} together "
                    f"with other functions ({u.value}); change it by hand"
                )
            actions += self._remove_slot(vm, u, addr, mappings, remove_mapping)
        return actions

    def _remove_slot(
        self,
        vm: Mapping[str, Any],
        u: SlotUse,
        addr: str,
        mappings: list[PciMapping],
        remove_mapping: bool,
    ) -> list[Action]:
        vmid, slot, value = int(vm["vmid"]), u.slot, u.value
        p = {
            "node": self.node,
            "vmid": vmid,
            "address": addr,
            "mapping": u.mapping,
            "slot": slot,
            "value": value,
        }
        undo = self._action("proxmox.hostpci_add", f"vm{vmid} {slot}", f"add {value}", p)
        actions = [
            self._action("proxmox.hostpci_remove", f"vm{vmid} {slot}", f"remove {value}", p, undo)
        ]
        live = self._live_slot(vm, slot)
        if live:  # a pending add that never went live just goes away
            self._warn(
                f"VM {vmid} is running: removing {slot} stays pending "
                "until the VM is stopped and started"
            )
        if remove_mapping and u.mapping is not None and not live:
            actions += self._mapping_cleanup(u.mapping, mappings, (vmid, slot))
        return actions

    def _live_slot(self, vm: Mapping[str, Any], slot: str) -> bool:
        """The slot is in a running VM's current config: its mapping stays until a restart."""
        if vm.get("status") != "running":
            return False
        path = self._cfg_path(str(vm["node"]), int(vm["vmid"]))
        return slot in (self.api.get(path, current=1) or {})

    def _mapping_cleanup(
        self, mid: str, mappings: list[PciMapping], leaving: tuple[int, str] | None
    ) -> list[Action]:
        """Delete mapping ``mid`` if vfctl made it and no VM but ``leaving`` uses it."""
        m = next((x for x in mappings if x.id == mid), None)
        if m is None or not m.managed:
            return []
        if self._mapping_users(mid) - {leaving}:
            return []
        old_map = list(m.raw)
        undo = self._action(
            "proxmox.mapping_put",
            f"mapping {mid}",
            "re-create",
            {"id": mid, "map": old_map, "description": m.description, "expect": None},
        )
        return [
            self._action(
                "proxmox.mapping_delete",
                f"mapping {mid}",
                "delete (unused)",
                {"id": mid, "expect": old_map},
                undo,
            )
        ]

    def _mapping_users(self, mid: str) -> set[tuple[int, str]]:
        """(vmid, slot) of every VM in the cluster that uses mapping ``mid``, now or pending."""
        users: set[tuple[int, str]] = set()
        for vm in self._vms():
            node, vmid = str(vm["node"]), int(vm["vmid"])
            cfgs = [self._config(node, vmid)]
            if vm.get("status") == "running":
                cfgs.append(dict(self.api.get(self._cfg_path(node, vmid), current=1) or {}))
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

    # ---- execution (called by the registered ops) -----------------------------------------

    def _write_config(
        self, node: str, vmid: int, decide: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> bool:
        """Read, decide, write with the digest; re-read and retry on a digest mismatch."""
        for _ in range(DIGEST_RETRIES):
            cfg = self._config(node, vmid)
            change = decide(cfg)
            if change is None:
                return False
            try:
                self.api.put(self._cfg_path(node, vmid), digest=cfg.get("digest"), **change)
                return True
            except PveApiError as exc:
                if not exc.digest_mismatch:
                    raise
        raise BackendError(
            f"VM {vmid} on {node}: its config changed under us "
            f"{DIGEST_RETRIES} times in a row (digest mismatch); nothing written"
        )

    def _note_pending(self, ctx: Context, node: str, vmid: int) -> None:
        status = self.api.get(f"/nodes/{node}/qemu/{vmid}/status/current") or {}
        if status.get("status") != "running":
            return
        for p in self.pending_changes(vmid):
            entry = {
                "vm": vmid,
                "node": node,
                "key": p["key"],
                "pending": p.get("pending"),
                "delete": bool(p.get("delete")),
            }
            if entry not in self.pending:
                _PENDING.append((repr(sorted(self.params().items())), entry))
                what = f"remove {p['key']}" if entry["delete"] else f"{p['key']}={p['pending']}"
                ctx.warnings.append(
                    f"VM {vmid} is running: pending {what} "
                    "(applies when the VM is stopped and started)"
                )

    def op_hostpci_add(self, ctx: Context, p: Mapping[str, Any]) -> None:
        node, vmid, addr = str(p["node"]), int(p["vmid"]), str(p["address"])
        maps, mid, present = self.mappings(), p.get("mapping"), self._present()

        def decide(cfg: dict[str, Any]) -> dict[str, Any] | None:
            uses = slot_uses(cfg, maps, node, present, self._warn, f"VM {vmid}")
            if addr in held_addresses(uses) or (
                mid is not None and any(u.mapping == mid for u in uses)
            ):
                return None
            free = [s for s in SLOTS if s not in cfg]
            if not free:
                raise RefusedError(f"VM {vmid} on {node} has no free hostpci slot")
            slot = p["slot"] if p["slot"] in free else free[0]
            return {slot: p["value"]}

        if self._write_config(node, vmid, decide):
            self._note_pending(ctx, node, vmid)

    def op_hostpci_remove(self, ctx: Context, p: Mapping[str, Any]) -> None:
        node, vmid, addr, mid = str(p["node"]), int(p["vmid"]), str(p["address"]), p.get("mapping")
        maps, present = self.mappings(), self._present()

        def decide(cfg: dict[str, Any]) -> dict[str, Any] | None:
            for u in slot_uses(cfg, maps, node, present, self._warn, f"VM {vmid}"):
                if (mid is not None and u.mapping == mid) or (
                    u.mapping is None and u.exact == (addr,)
                ):
                    return {"delete": u.slot}
                if addr in u.exact:
                    raise RefusedError(
                        f"{u.slot} of VM {vmid} on {node} now holds {u.value}; not removing it"
                    )
            return None

        if self._write_config(node, vmid, decide):
            self._note_pending(ctx, node, vmid)

    def _mapping_now(self, mid: str) -> Mapping[str, Any] | None:
        for m in self.api.get("/cluster/mapping/pci") or []:
            if m.get("id") == mid:
                return dict(self.api.get(f"/cluster/mapping/pci/{mid}") or m)
        return None

    def op_mapping_put(self, p: Mapping[str, Any]) -> None:
        """``fill``: complete that VF's entry from sysfs first; ``written_fill``: undo of such a put."""
        mid, expect = str(p["id"]), p.get("expect")
        want = self._fill_map([str(x) for x in p["map"]], p.get("fill"))
        cur = self._mapping_now(mid)
        cur_map = None if cur is None else [str(x) for x in cur.get("map") or []]
        if cur_map == want:
            return
        if cur_map is None or expect is None:
            ok = cur_map is None and expect is None
        else:
            ok = self._map_matches(cur_map, [str(x) for x in expect], p.get("written_fill"))
        if not ok:
            raise RefusedError(f"PCI mapping {mid} changed since it was planned; not writing it")
        extra = {"description": p["description"]} if p.get("description") else {}
        if cur is None:
            self.api.post("/cluster/mapping/pci", id=mid, map=want, **extra)
        else:
            self.api.put(f"/cluster/mapping/pci/{mid}", map=want, digest=cur.get("digest"), **extra)

    def op_mapping_delete(self, p: Mapping[str, Any]) -> None:
        mid = str(p["id"])
        cur = self._mapping_now(mid)
        if cur is None:
            return
        cur_map = [str(x) for x in cur.get("map") or []]
        if not self._map_matches(cur_map, list(p["expect"]), p.get("written_fill")):
            raise RefusedError(f"PCI mapping {mid} changed since it was planned; not deleting it")
        users = self._mapping_users(mid)
        if users:
            vm, slot = sorted(users)[0]
            raise RefusedError(f"PCI mapping {mid} is still used by VM {vm} ({slot})")
        self.api.delete(f"/cluster/mapping/pci/{mid}")


def _backend(ctx: Context, p: Mapping[str, Any]) -> ProxmoxBackend:
    be = ctx.backend("proxmox", p["conn"])
    if not isinstance(be, ProxmoxBackend):
        raise BackendError("the proxmox backend factory returned something else")
    return be


@op("proxmox.hostpci_add")
def _op_hostpci_add(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).op_hostpci_add(ctx, p)


@op("proxmox.hostpci_remove")
def _op_hostpci_remove(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).op_hostpci_remove(ctx, p)


@op("proxmox.mapping_put")
def _op_mapping_put(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).op_mapping_put(p)


@op("proxmox.mapping_delete")
def _op_mapping_delete(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).op_mapping_delete(p)
