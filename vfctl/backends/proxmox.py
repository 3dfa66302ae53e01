"""Proxmox VE backend: the connection, what it fetches, and the Backend protocol's methods.

Reads here (VM list, configs, mappings, this node's sysfs ids), decisions in ``pve_attach``
and ``pve_mapping_plan`` (pure, from a ``PveFacts``), writes in ``pve_ops`` (digest-checked).
``pve_hostpci`` only converts strings, ``pve_client`` only talks to the API. State is per
instance: one instance per connection plans and executes (the engine reuses the session's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vfctl.backends import pve_attach
from vfctl.backends.base import AttachRequest
from vfctl.backends.pve_client import PveApi, PveSettings, settings_from_env
from vfctl.backends.pve_hostpci import MapEntry, full, vendor_device
from vfctl.backends.pve_mapping import (
    PciMapping,
    Pool,
    SlotUse,
    held_addresses,
    parse_mappings,
    referenced_mappings,
    slot_uses,
)
from vfctl.backends.pve_mapping_plan import complete, needs_ids
from vfctl.backends.pve_plan import (
    Notes,
    PveFacts,
    SysfsIds,
    is_q35,
    mapping_id_for,
    resolve_here,
    resolve_vm,
)
from vfctl.errors import NotFoundError
from vfctl.host.open import open_host
from vfctl.host.sysfs import PCI_DEVICES, Host
from vfctl.model import PF, Attachment, PoolRef
from vfctl.plan import Action

_GROUP = re.compile(r"[0-9]{1,9}")

__all__ = ["ProxmoxBackend", "is_q35", "mapping_id_for", "resolve_vm"]


class ProxmoxBackend:
    name = "proxmox"

    def __init__(self, api: PveApi, settings: PveSettings, host: Host | None = None) -> None:
        self.api = api
        self.settings = settings
        self.node = settings.node
        self.host = host
        self.warned: list[str] = []  # plan-time warnings of this connection, in order
        self.pending_log: list[dict[str, Any]] = []  # hostpci changes waiting for a VM restart
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

    # ---- the protocol's optional capabilities ---------------------------------------------

    def warnings(self) -> list[str]:
        return list(self.warned)

    def pending(self) -> list[dict[str, Any]]:
        """Changes written to running VMs through this connection that wait for a restart."""
        return list(self.pending_log)

    def pools(self, pfs: Sequence[PF]) -> dict[str, str] | None:
        """No libvirt-style hostdev networks here: PVE pools are mappings (``pool_refs``)."""
        return None

    def warn(self, text: str) -> None:
        if text not in self.warned:
            self.warned.append(text)

    def take(self, notes: Notes) -> None:
        """A plan's warnings into this connection's list (``once`` ones not repeated)."""
        for text, once in notes.items:
            if once:
                self.warn(text)
            else:
                self.warned.append(text)

    # ---- reads ----------------------------------------------------------------------------

    def cfg_path(self, node: str, vmid: int) -> str:
        return f"/nodes/{node}/qemu/{vmid}/config"

    def vms(self) -> list[Mapping[str, Any]]:
        res = self.api.get("/cluster/resources", type="vm") or []
        return [r for r in res if r.get("type") == "qemu"]

    def raw_mappings(self) -> list[Mapping[str, Any]]:
        """The API's mapping list as it came (for code that rewrites entries verbatim)."""
        return list(self.api.get("/cluster/mapping/pci") or [])

    def mappings(self) -> list[PciMapping]:
        """Every mapping, typed, with every entry PVE accepts (invalid ones warned, skipped)."""
        return parse_mappings(self.raw_mappings(), self.warn)

    def present(self) -> frozenset[str]:
        """This node's PCI addresses: what a function-less id expands to (as PVE's lspci does)."""
        if self.host is None:
            return frozenset()
        return frozenset(self.host.listdir(PCI_DEVICES))

    def uses(
        self, cfg: Mapping[str, Any], mappings: list[PciMapping], vmid: int | str
    ) -> list[SlotUse]:
        return slot_uses(cfg, mappings, self.node, self.present(), self.warn, f"VM {vmid}")

    def config(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(self.api.get(self.cfg_path(node, vmid)) or {})

    def current(self, node: str, vmid: int) -> dict[str, Any]:
        """A running VM's config as it runs (no pending values)."""
        return dict(self.api.get(self.cfg_path(node, vmid), current=1) or {})

    def version(self) -> str:
        return str((self.api.get("/version") or {}).get("version", "0"))

    def check_node(self) -> None:
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

    def resolve(self, spec: str) -> Mapping[str, Any]:
        self.check_node()
        return resolve_here(self.vms(), self.node, spec)

    def sysfs_ids(self, addr: str) -> SysfsIds:
        """(IOMMU group, ``vvvv:dddd`` subsystem id) from sysfs; None where absent or odd.

        sysfs values go into a property string: a crafted ``subsystem_vendor`` must never
        add keys to a mapping entry, so anything but 4 hex digits each is left out.
        """
        if self.host is None:
            return (None, None)
        name = self.host.link_name(f"{PCI_DEVICES}/{addr}/iommu_group")
        group = int(name) if name and full(_GROUP, name) else None
        sv = self.host.read_opt(f"{PCI_DEVICES}/{addr}/subsystem_vendor")
        sd = self.host.read_opt(f"{PCI_DEVICES}/{addr}/subsystem_device")
        return (group, vendor_device(sv, sd))

    def complete(self, e: MapEntry) -> MapEntry:
        """``e`` with a missing iommugroup/subsystem-id read from this host's sysfs now."""
        if len(e.path) != 1:
            return e
        return complete(e, {e.path[0]: self.sysfs_ids(e.path[0])})

    def attachments(self) -> dict[str, list[Attachment]]:
        """Every address held by a VM on this node; running VMs' pending changes set live/config."""
        self.check_node()
        mappings = self.mappings()
        out: dict[str, list[Attachment]] = {}
        users: dict[str, set[str]] = {}
        for vm in self.vms():
            if vm.get("node") != self.node:
                continue
            vmid = int(vm["vmid"])
            cfg = self.config(self.node, vmid)
            uses = self.uses(cfg, mappings, vmid)
            held = held_addresses(uses)
            live_held: dict[str, str] = {}
            running = vm.get("status") == "running"
            if running:
                pend = self.api.get(f"/nodes/{self.node}/qemu/{vmid}/pending") or []
                current = {p["key"]: p["value"] for p in pend if "value" in p}
                live_uses = self.uses(current, mappings, vmid)
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
        present = self.present()
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

    def facts(self, req: AttachRequest, detach: bool) -> PveFacts:
        """Everything ``pve_attach`` decides from, for this request."""
        self.check_node()
        vms = self.vms()
        resolve_here(vms, self.node, req.vm)  # an unknown VM fails before anything else
        mappings = self.mappings()
        # detach may delete a vfctl mapping: only if no VM anywhere in the cluster uses it
        cluster = detach and any(m.managed for m in mappings)
        configs: dict[int, Mapping[str, Any]] = {}
        current: dict[int, Mapping[str, Any]] = {}
        for vm in vms:
            node, vmid = str(vm["node"]), int(vm["vmid"])
            if node != self.node and not cluster:
                continue
            configs[vmid] = self.config(node, vmid)
            if (detach or req.force) and vm.get("status") == "running":
                current[vmid] = self.current(node, vmid)
        return PveFacts(
            node=self.node,
            conn=self.params(),
            vms=vms,
            configs=configs,
            mappings=mappings,
            present=self.present(),
            current=current,
            pools=() if detach else self.mapping_pools(),
            is_root=self.api.is_root,
            version=self.version() if req.options.get("driver_keep") and not detach else None,
            ids={a: self.sysfs_ids(a) for a in needs_ids(self.node, mappings, req.vf.address)},
        )

    # ---- planning: fetch, decide purely, keep the warnings --------------------------------

    def plan_attach(self, req: AttachRequest) -> list[Action]:
        facts, notes = self.facts(req, detach=False), Notes()
        try:
            return pve_attach.plan_attach(facts, req, notes).actions
        finally:
            self.take(notes)

    def plan_detach(self, req: AttachRequest) -> list[Action]:
        facts, notes = self.facts(req, detach=True), Notes()
        try:
            return pve_attach.plan_detach(facts, req, notes).actions
        finally:
            self.take(notes)
