"""VF pools on Proxmox VE: a cluster PCI mapping with one entry per pool VF per node.

Several entries of one node in a mapping are a pool to PVE itself: at VM start qemu-server
takes the first entry none of whose functions an earlier slot of the VM uses and that it can
reserve (qemu-server ``src/PVE/QemuServer/PCI.pm`` ``choose_hostpci_devices`` /
``reserve_pci_usage``; pve-docs ``qm.adoc`` "Resource Mapping"). A pool spans the cluster:
each node writes only its own entries and keeps every other node's. Nodes running
``vfctl pool create`` at once (Ansible forks) race on one file (``mapping/pci.cfg``, whose
digest covers every mapping), so each write sends the digest it read and, on a mismatch,
re-reads and re-merges, a bounded number of times. The mapping's description carries vfctl's
mark and the pool's settings; a mapping without it is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from vfctl.backends.proxmox import ProxmoxBackend
from vfctl.backends.pve_client import PveApiError
from vfctl.backends.pve_hostpci import (
    SLOTS,
    MapEntry,
    PropertyStringError,
    format_hostpci,
    format_map_entry,
    parse_hostpci,
    parse_map_entry,
)
from vfctl.backends.pve_ops import DIGEST_RETRIES, note_pending, write_config
from vfctl.backends.pve_plan import Notes, hostpci_value
from vfctl.errors import BackendError, NotFoundError, RefusedError
from vfctl.model import PF, VF
from vfctl.plan import Action, Context, op
from vfctl.pools import PoolSettings, PoolView

MARK = "vfctl: pool"  # description prefix of the mappings that are vfctl pools


def is_pool(m: Mapping[str, Any]) -> bool:
    return str(m.get("description") or "").startswith(MARK)


def describe(s: PoolSettings) -> str:
    enc = s.encode()
    return f"{MARK} {enc}" if enc else MARK


def _entries(m: Mapping[str, Any] | None) -> list[str]:
    items = (m or {}).get("map") or []
    return [str(x) for x in ([items] if isinstance(items, str) else items)]


def _node_of(raw: str) -> str | None:
    try:
        return parse_map_entry(raw).node
    except PropertyStringError:
        return None


def _paths(raw: str) -> tuple[str, ...]:
    try:
        return parse_map_entry(raw).path
    except PropertyStringError:
        return ()


def merged(cur: Sequence[str], node: str, mine: Sequence[str]) -> list[str]:
    """Every other node's entries as they are, then ``mine`` for ``node`` (in pool order)."""
    return [e for e in cur if _node_of(e) != node] + list(mine)


class PvePools:
    name = "proxmox"

    def __init__(self, be: ProxmoxBackend) -> None:
        self.be = be
        self.warnings = be.warned  # one list: the CLI reports the connection's warnings

    @property
    def node(self) -> str:
        return self.be.node

    # ---- reading -------------------------------------------------------------------------

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        return next((m for m in self.be.raw_mappings() if m.get("id") == name), None)

    def _mine(self, name: str) -> Mapping[str, Any] | None:
        m = self.mapping(name)
        if m is not None and not is_pool(m):
            raise RefusedError(
                f"PCI mapping {name} exists and is not a vfctl pool; vfctl never changes it"
            )
        return m

    def users(self, name: str) -> list[tuple[str, int, str, bool]]:
        """(node, vmid, slot, running) of every VM whose config or pending config uses ``name``."""
        out = []
        for vm in self.be.vms():
            node, vmid = str(vm["node"]), int(vm["vmid"])
            cfg = self.be.config(node, vmid)
            for slot in SLOTS:
                v = cfg.get(slot)
                try:
                    if isinstance(v, str) and parse_hostpci(v).mapping == name:
                        out.append((node, vmid, slot, vm.get("status") == "running"))
                except PropertyStringError:
                    continue
        return out

    def claimed(self, pf: PF) -> dict[str, str]:
        """Address -> mapping, for vfctl pools and for any mapping this node has as a pool."""
        out: dict[str, str] = {}
        for m in self.be.raw_mappings():
            mine = [a for e in _entries(m) if _node_of(e) == self.node for a in _paths(e)]
            if is_pool(m) or len(mine) > 1:
                out.update(dict.fromkeys(mine, str(m["id"])))
        return out

    def views(self) -> list[PoolView]:
        self.be.check_node()
        out = []
        for m in self.be.raw_mappings():
            if not is_pool(m):
                continue
            mine: list[str] = []
            elsewhere: dict[str, int] = {}
            recorded: dict[str, tuple[int | None, str | None]] = {}
            for raw in _entries(m):
                try:
                    e = parse_map_entry(raw)
                except PropertyStringError:
                    continue
                if e.node == self.node:
                    mine += list(e.path)
                    recorded.update(dict.fromkeys(e.path, (e.iommugroup, e.subsystem_id)))
                else:
                    elsewhere[e.node] = elsewhere.get(e.node, 0) + 1
            name = str(m["id"])
            out.append(
                PoolView(
                    name=name,
                    backend="proxmox",
                    pf=None,
                    members=tuple(mine),
                    settings=PoolSettings.decode(str(m.get("description"))[len(MARK) :]),
                    vms=tuple(sorted({f"vm{v}" for _n, v, _s, _r in self.users(name)})),
                    elsewhere=elsewhere,
                    recorded=recorded,
                )
            )
        return sorted(out, key=lambda v: v.name)

    # ---- planning ------------------------------------------------------------------------

    def _entry(self, vf: VF) -> str:
        e = MapEntry(
            node=self.node,
            path=(vf.address,),
            id=f"{vf.vendor_id}:{vf.device_id}".lower(),
            iommugroup=vf.iommu_group,
        )
        return format_map_entry(self.be.complete(e))

    def _set(self, name: str, mine: list[str], old: list[str], desc: str | None,
             old_desc: str | None, what: str) -> Action:  # fmt: skip
        p = {"conn": self.be.params(), "id": name, "node": self.node}
        fwd = {**p, "set": mine, "expect": old, "description": desc}
        back = {**p, "set": old, "expect": mine, "description": old_desc}
        t = f"mapping {name} ({self.node})"
        return Action(
            "pve_pool.entries", t, what, fwd, Action("pve_pool.entries", t, "restore", back)
        )

    def plan_put(
        self, name: str, pf: PF, members: Sequence[VF], s: PoolSettings, create: bool
    ) -> list[Action]:
        self.be.check_node()
        m = self._mine(name)
        if m is None and not create:
            raise NotFoundError(f"no vfctl pool {name!r} in the PVE cluster")
        old = [e for e in _entries(m) if _node_of(e) == self.node]
        mine = [self._entry(v) for v in members]
        desc = describe(s)
        old_desc = None if m is None else str(m.get("description"))
        if old == mine and old_desc == desc:
            return []
        what = f"{self.node}: {len(mine)} VFs" + (f", vlan {s.vlan}" if s.vlan else "")
        return [
            self._set(name, mine, old, desc, old_desc, ("create " if m is None else "set ") + what)
        ]

    def plan_delete(self, name: str, force: bool) -> list[Action]:
        self.be.check_node()
        m = self._mine(name)
        if m is None:
            return []
        cur = _entries(m)
        old = [e for e in cur if _node_of(e) == self.node]
        last = len(old) == len(cur)  # the mapping goes away: VMs on every node lose it
        users = [u for u in self.users(name) if last or u[0] == self.node]
        running = [f"vm{v} on {n}" for n, v, _s, r in users if r]
        if running:
            raise RefusedError(
                f"pool {name} is used by running VM(s) {', '.join(running)}; stop them first "
                "(not even --force deletes it under them)"
            )
        if users and not force:
            refs = ", ".join(f"vm{v} {s} on {n}" for n, v, s, _r in users)
            raise RefusedError(
                f"pool {name} is referenced by {refs}; --force detaches it", override="--force"
            )
        actions: list[Action] = []
        for n, vmid, slot, _r in users:
            actions.append(
                self._slot_action("remove", n, vmid, slot, self.be.config(n, vmid)[slot], name)
            )
        what = "delete (no other node has entries)" if last else f"drop {self.node}'s entries"
        return [
            *actions,
            self._set(name, [], old, str(m.get("description")), str(m.get("description")), what),
        ]

    def _slot_action(
        self, verb: str, node: str, vmid: int, slot: str, value: str, name: str
    ) -> Action:
        p = {"conn": self.be.params(), "node": node, "vmid": vmid, "slot": slot}
        p |= {"value": value, "mapping": name}
        other = "remove" if verb == "add" else "add"
        t = f"vm{vmid} {slot}"
        return Action(
            f"pve_pool.hostpci_{verb}",
            t,
            f"{verb} {value}",
            p,
            Action(f"pve_pool.hostpci_{other}", t, f"{other} {value}", p),
        )

    def plan_attach(self, vm: str, name: str, options: Mapping[str, Any]) -> list[Action]:
        if self._mine(name) is None and not options.get("planned"):
            raise NotFoundError(f"no vfctl pool {name!r} in the PVE cluster")
        v = self.be.resolve(vm)
        vmid = int(v["vmid"])
        cfg = self.be.config(self.node, vmid)
        for slot in SLOTS:
            val = cfg.get(slot)
            try:
                if isinstance(val, str) and parse_hostpci(val).mapping == name:
                    return []  # one slot per pool and VM: already there
            except PropertyStringError:
                continue
        notes = Notes()
        version = self.be.version() if options.get("driver_keep") else None
        try:
            h = hostpci_value(self.node, cfg, vmid, options, version, notes)
        finally:
            self.be.take(notes)
        h = replace(h, mapping=name)
        free = [s for s in SLOTS if s not in cfg]
        if not free:
            raise RefusedError(f"VM {vmid} on {self.node} has no free hostpci slot")
        if v.get("status") == "running":
            self.warnings.append(
                f"VM {vmid} is running: PVE does not hot-plug hostpci devices, "
                "the change stays pending until the VM is stopped and started"
            )
        return [self._slot_action("add", self.node, vmid, free[0], format_hostpci(h), name)]

    def plan_detach(self, vm: str, name: str, options: Mapping[str, Any]) -> list[Action]:
        v = self.be.resolve(vm)
        vmid = int(v["vmid"])
        cfg = self.be.config(self.node, vmid)
        out = []
        for slot in SLOTS:
            val = cfg.get(slot)
            try:
                if isinstance(val, str) and parse_hostpci(val).mapping == name:
                    out.append(self._slot_action("remove", self.node, vmid, slot, val, name))
            except PropertyStringError:
                continue
        return out

    # ---- doing (the ops) -----------------------------------------------------------------

    def apply_entries(self, p: Mapping[str, Any]) -> None:
        """Make ``node``'s entries exactly ``set``, keeping every other node's; digest-checked."""
        name, node = str(p["id"]), str(p["node"])
        want = [str(x) for x in p["set"]]
        expect = [str(x) for x in p.get("expect") or []]
        api = self.be.api
        for _ in range(DIGEST_RETRIES * 2):
            cur_m = self.mapping(name)
            if cur_m is None:
                if not want:
                    return
                try:
                    api.post(
                        "/cluster/mapping/pci", id=name, map=want, description=p["description"]
                    )
                    return
                except PveApiError:
                    # another node created it meanwhile (pve-manager API2/Cluster/Mapping/PCI.pm
                    # `create` dies "pci ID '…' already defined"): merge into theirs; decided by
                    # reading the mapping back, not by the error's wording
                    if self.mapping(name) is not None:
                        continue
                    raise
            if not is_pool(cur_m):
                raise RefusedError(f"PCI mapping {name} is not a vfctl pool; not changing it")
            full = dict(api.get(f"/cluster/mapping/pci/{name}") or {})
            cur = _entries(full)
            mine = [e for e in cur if _node_of(e) == node]
            if mine == want and (not want or full.get("description") == p["description"]):
                return
            if mine != want and mine != expect:
                raise RefusedError(
                    f"PCI mapping {name}: {node}'s entries changed since they were planned"
                )
            new = merged(cur, node, want)
            try:
                if not new:
                    api.delete(f"/cluster/mapping/pci/{name}")
                else:
                    extra = {"description": p["description"]} if p.get("description") else {}
                    api.put(
                        f"/cluster/mapping/pci/{name}", map=new, digest=full.get("digest"), **extra
                    )
                return
            except PveApiError as exc:
                if not exc.digest_mismatch:
                    raise
        raise BackendError(
            f"PCI mapping {name}: the cluster's mapping file changed under us "
            f"{DIGEST_RETRIES * 2} times in a row (digest mismatch); nothing written"
        )

    def apply_slot(self, ctx: Context, p: Mapping[str, Any], add: bool) -> None:
        node, vmid, name = str(p["node"]), int(p["vmid"]), str(p["mapping"])

        def uses(cfg: Mapping[str, Any]) -> list[str]:
            out = []
            for s in SLOTS:
                v = cfg.get(s)
                try:
                    if isinstance(v, str) and parse_hostpci(v).mapping == name:
                        out.append(s)
                except PropertyStringError:
                    continue
            return out

        def decide(cfg: dict[str, Any]) -> dict[str, Any] | None:
            have = uses(cfg)
            if add:
                if have:
                    return None
                slot = p["slot"] if p["slot"] not in cfg else next(s for s in SLOTS if s not in cfg)
                return {slot: p["value"]}
            if p["slot"] in have:
                return {"delete": p["slot"]}
            return {"delete": have[0]} if have else None

        if write_config(self.be, node, vmid, decide):
            note_pending(self.be, ctx, node, vmid)


def _pools(ctx: Context, p: Mapping[str, Any]) -> PvePools:
    be = ctx.backend("proxmox", p["conn"])
    if not isinstance(be, ProxmoxBackend):
        raise BackendError("the proxmox backend factory returned something else")
    return PvePools(be)


@op("pve_pool.entries")
def _op_entries(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_entries(p)


@op("pve_pool.hostpci_add")
def _op_add(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_slot(ctx, p, add=True)


@op("pve_pool.hostpci_remove")
def _op_remove(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_slot(ctx, p, add=False)
