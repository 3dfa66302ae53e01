"""What Proxmox planning decides from, and its small pure rules (ids, q35, VM refs, values).

``proxmox`` fetches a ``PveFacts`` (API answers, this node's sysfs ids); ``pve_attach`` and
``pve_mapping_plan`` decide from it alone, so a test builds one from literals; ``pve_ops``
executes. Nothing here calls the API or reads sysfs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vfctl.backends.pve_hostpci import HostPci
from vfctl.backends.pve_mapping import (
    PciMapping,
    Pool,
    SlotUse,
    slot_uses,
)
from vfctl.errors import HostError, NotFoundError, RefusedError, UsageError
from vfctl.model import PF, VF
from vfctl.plan import Action

KEEP_DRIVER_SINCE = (9, 1)
_VMREF = re.compile(r"(?:vm)?([1-9][0-9]{2,8})", re.IGNORECASE)
# what PVE writes for an IOMMU group / subsystem id of one function, read from sysfs
SysfsIds = tuple[int | None, str | None]


@dataclass(frozen=True)
class PveFacts:
    """What the API and this node's sysfs said, fetched before planning."""

    node: str
    conn: Mapping[str, Any]  # the backend's params(): every action carries them
    vms: Sequence[Mapping[str, Any]]  # /cluster/resources qemu entries (vmid, node, status)
    configs: Mapping[int, Mapping[str, Any]]  # vmid -> config (pending values applied)
    mappings: Sequence[PciMapping] = ()
    present: frozenset[str] = frozenset()  # this node's PCI addresses
    current: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # running: as runs
    pools: Sequence[Pool] = ()  # this node's pools and their users (attach only)
    is_root: bool = False  # root@pam may write raw host= values; a token uses mappings
    version: str | None = None  # PVE's version, fetched when driver=keep is asked
    ids: Mapping[str, SysfsIds] = field(default_factory=dict)  # address -> (group, subsystem)


@dataclass
class Notes:
    """Warnings in the order a plan makes them; ``once`` ones the backend does not repeat."""

    items: list[tuple[str, bool]] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.items.append((text, True))

    def note(self, text: str) -> None:
        self.items.append((text, False))

    @property
    def texts(self) -> list[str]:
        return [t for t, _ in self.items]


@dataclass(frozen=True)
class Planned:
    actions: list[Action]
    notes: Notes


def mapping_id_for(pf: PF, vf: VF) -> str:
    """Stable id from PF and VF (``vf-eth2-3``), squeezed into the pve-configid pattern."""
    base = (pf.netdev or pf.address).lower()
    return re.sub(r"[^a-z0-9_-]", "-", f"vf-{base}-{vf.index}")


def is_q35(machine: Any) -> bool:
    """PVE machine strings: ``q35``, ``pc-q35-9.0+pve1``, ``pc-i440fx-…``; unset means i440fx."""
    return isinstance(machine, str) and "q35" in machine


def resolve_vm(resources: Sequence[Mapping[str, Any]], spec: str) -> Mapping[str, Any]:
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


def resolve_here(resources: Sequence[Mapping[str, Any]], node: str, spec: str) -> Mapping[str, Any]:
    """The VM ``spec`` names, refused when it runs on another node than the VFs."""
    vm = resolve_vm(resources, spec)
    if vm.get("node") != node:
        raise RefusedError(
            f"VM {vm['vmid']} ({vm.get('name')}) is on node {vm.get('node')}, "
            f"but the VFs are on node {node}"
        )
    return vm


def unfit(addr: str, exc: Exception) -> HostError:
    """A value read from sysfs that PVE's format refuses: never written, never escaped."""
    return HostError(
        f"VF {addr}: a value read from sysfs does not fit PVE's format ({exc}); nothing written"
    )


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def hostpci_value(
    node: str,
    cfg: Mapping[str, Any],
    vmid: int,
    opts: Mapping[str, Any],
    version: str | None,
    notes: Notes,
) -> HostPci:
    """The raw-device value with pcie/rombar/driver decided (the caller may swap host for mapping)."""
    want_pcie = opts.get("pcie")
    q35 = is_q35(cfg.get("machine"))
    machine = cfg.get("machine") or "i440fx (default)"
    if want_pcie is True and not q35:
        raise UsageError(f"--pcie needs a q35 machine type; VM {vmid} on {node} uses {machine}")
    if want_pcie is None and not q35:
        notes.note(
            f"VM {vmid} uses machine type {machine}: attaching as a "
            "conventional PCI device (pcie=1 needs q35)"
        )
    pcie = True if (want_pcie is None and q35) or want_pcie is True else None
    rombar = opts.get("rombar")
    driver = None
    if opts.get("driver_keep"):
        ver = version or "0"
        if version_tuple(ver) < KEEP_DRIVER_SINCE:
            raise UsageError(f"driver=keep needs PVE 9.1 or later; {node} runs {ver}")
        driver = "keep"
    return HostPci(
        host=(), pcie=pcie, rombar=None if rombar is None else bool(rombar), driver=driver
    )


def uses_of(
    facts: PveFacts, cfg: Mapping[str, Any], vmid: int | str, notes: Notes
) -> list[SlotUse]:
    return slot_uses(cfg, facts.mappings, facts.node, facts.present, notes.warn, f"VM {vmid}")


def claims(actions: Sequence[Action]) -> dict[int, list[str]]:
    """hostpciN slots earlier actions of the same plan take, by VM id (a profile's attaches)."""
    out: dict[int, list[str]] = {}
    for a in actions:
        if a.op == "proxmox.hostpci_add":
            out.setdefault(int(a.params["vmid"]), []).append(str(a.params["slot"]))
    return out


def action(
    facts: PveFacts,
    opname: str,
    target: str,
    detail: str,
    p: Mapping[str, Any],
    undo: Action | None = None,
) -> Action:
    """A ``proxmox.*`` action: its params carry the connection so the engine can find it."""
    return Action(opname, target, detail, {"conn": dict(facts.conn), **p}, undo)
