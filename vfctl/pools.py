"""VF pools: a named set of VFs with common settings that a VM manager hands out one at a time.

Pure: what a pool's settings are and how they are written down in the VM manager's object
(a libvirt network's metadata, a PVE mapping's description), which host actions make a VF a
ready pool member (its settings over netlink, then vfio-pci), how a member's state reads
(free / reserved / held) and which VF ``attach VM PF any`` takes. The backends own the VM
manager objects (``libvirt_pool``, ``pve_pool``); the CLI is ``cli_pool``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from vfctl import plan_host, vfattrs, vfsettings
from vfctl.errors import NotFoundError, RefusedError, UsageError
from vfctl.inuse import netdev_uses, vfio_users
from vfctl.model import PF, VF, HostModel
from vfctl.plan import Action

# both a libvirt network name and a PVE mapping id (pve-configid): a letter, then [a-z0-9_-]
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,62}")
BACKENDS = ("libvirt", "proxmox")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid pool name {name!r}: a letter, then 2-63 letters, digits, '-' or '_'"
        )
    return name


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class PoolSettings:
    """What every member of a pool gets on the host (None: left as it is)."""

    vlan: int | None = None
    qos: int | None = None
    trust: bool | None = None
    spoofchk: bool | None = None
    mac: str | None = None  # only "auto": each VF its own stable MAC
    max_tx_rate: int | None = None

    def desired(self) -> vfattrs.Desired:
        return vfattrs.Desired(**self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def encode(self) -> str:
        """``vlan=42,trust=off,…``: how the settings ride in the VM manager's object."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out.append(f"{_KEYS[f.name]}={'on' if v is True else 'off' if v is False else v}")
        return ",".join(out)

    @classmethod
    def decode(cls, text: str | None) -> PoolSettings:
        """The inverse of ``encode``; anything it would not write is ignored (not trusted)."""
        vals: dict[str, Any] = {}
        by_key = {k: a for a, k in _KEYS.items()}
        for part in (text or "").split(","):
            k, _, v = part.strip().partition("=")
            attr = by_key.get(k)
            if attr is None:
                continue
            kind = vfattrs.ATTR[attr].kind
            if kind == "bool" and v in ("on", "off"):
                vals[attr] = v == "on"
            elif kind == "mac" and v == "auto":
                vals[attr] = v
            elif kind == "int" and v.isdigit() and len(v) < 8:
                vals[attr] = int(v)
        try:
            return validate(cls(**vals))
        except UsageError:
            return cls()


# how a setting rides in the VM manager's object: its ``vfctl set`` option without the dashes
_KEYS = {f.name: vfattrs.ATTR[f.name].option.removeprefix("--") for f in fields(PoolSettings)}


def validate(s: PoolSettings) -> PoolSettings:
    """vfsettings' rules, plus: a pool's MAC can only be ``auto`` (each VF its own)."""
    if s.mac is not None and s.mac != "auto":
        raise UsageError(f"invalid --mac {s.mac!r}: a pool's MAC can only be 'auto'")
    if s.qos and not s.vlan:
        raise UsageError("--qos needs --vlan: the priority rides in the VLAN tag")
    vfsettings.validate(s.desired())
    return s


def merge(old: PoolSettings, new: PoolSettings) -> PoolSettings:
    """``new`` where it says something, else ``old`` (``pool create`` again changes one key)."""
    return PoolSettings(
        **{f.name: getattr(new, f.name) if getattr(new, f.name) is not None else getattr(old, f.name)
           for f in fields(old)}
    )  # fmt: skip


# ---------------------------------------------------------------- what a backend reports


@dataclass(frozen=True)
class PoolView:
    """One vfctl pool as its VM manager holds it, seen from this host."""

    name: str
    backend: str
    pf: str | None  # PF address the pool's VFs belong to on this host
    members: tuple[str, ...]  # this host's member addresses, in the order they are handed out
    settings: PoolSettings = field(default_factory=PoolSettings)
    vms: tuple[str, ...] = ()  # VMs whose config references the pool
    elsewhere: Mapping[str, int] = field(default_factory=dict)  # other nodes: member count
    active: bool | None = None  # libvirt: the network runs
    # what the VM manager recorded per member (PVE entries): address -> (iommugroup, subsystem)
    recorded: Mapping[str, tuple[int | None, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberState:
    address: str
    index: int | None  # VF index on the pool's PF (None: not a VF of it any more)
    state: str  # free | held | reserved | missing
    held_by: str | None
    drift: tuple[str, ...]  # "vlan is 0, pool wants 42"
    driver: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "vf": self.index,
            "state": self.state,
            "held_by": self.held_by,
            "driver": self.driver,
            "drift": list(self.drift),
        }


def holder(vf: VF) -> tuple[str, str] | None:
    """(state, VM) when a running VM holds the VF or is about to, from what discovery saw."""
    hb = getattr(vf, "held_by", None)  # issue 12's /dev/vfio holders and PVE reservations
    if hb is not None:
        vm = getattr(hb, "vm", None) or f"pid {getattr(hb, 'pid', '?')}"
        return ("held" if getattr(hb, "pid", None) is not None else "reserved", str(vm))
    for a in vf.attached_to:
        if a.live:
            return ("held", a.vm)
    return None


def drift(vf: VF, s: PoolSettings, ident: str, pf_address: str) -> tuple[str, ...]:
    """Which of the pool's settings the VF does not have (settings the driver hides: not drift)."""
    want = s.to_json()
    if want["mac"] == "auto":
        want["mac"] = vfsettings.auto_mac(ident, pf_address, vf.index)
    out = []
    for k, v in want.items():
        if v is None:
            continue
        have = vfattrs.shown(k, getattr(vf.settings, k))
        if k == "vlan" and have is None:
            continue
        if have is not None and not vfattrs.same(k, have, v):
            out.append(f"{k} is {_show(have)}, pool wants {_show(v)}")
    if vf.driver != plan_host.VFIO:
        out.append(f"driver is {vf.driver or 'none'}, pool wants {plan_host.VFIO}")
    return tuple(out)


def _show(v: Any) -> str:
    return "on" if v is True else "off" if v is False else str(v)


def member_states(view: PoolView, model: HostModel, ident: str) -> list[MemberState]:
    by_addr = {v.address: (p, v) for p in model.pfs for v in p.vfs}
    out = []
    for a in view.members:
        pv = by_addr.get(a)
        if pv is None:
            out.append(MemberState(a, None, "missing", None, ("no such VF on this host",), None))
            continue
        p, v = pv
        h = holder(v)
        out.append(
            MemberState(
                a,
                v.index,
                h[0] if h else "free",
                h[1] if h else None,
                drift(v, view.settings, ident, p.address),
                v.driver,
            )
        )
    return out


# ---------------------------------------------------------------- planning (host side)


def select(pf: PF, indexes: Sequence[int]) -> list[VF]:
    out = []
    for i in indexes:
        v = pf.vf(i)
        if v is None:
            raise NotFoundError(f"{pf.netdev or pf.address} has no VF {i}")
        out.append(v)
    return out


def plan_members(model: HostModel, pf: PF, vfs: Sequence[VF], s: PoolSettings) -> list[Action]:
    """Each VF gets the pool's settings (through the PF), then vfio-pci (ready to hand out)."""
    actions: list[Action] = []
    d = s.desired()
    if not d.empty():
        if not pf.netdev:
            raise UsageError(
                f"{pf.address} has no netdev: pool settings (VLAN, trust, …) go through the PF"
            )
        ident = model.host_id if d.mac == "auto" else None
        for v in vfs:
            actions += vfsettings.plan_set(pf, v, d, ident=ident)
    actions += plan_host.plan_bind(model, pf, list(vfs), plan_host.VFIO)
    return actions


def check_same_pf(view: PoolView, model: HostModel, pf: PF) -> None:
    """One PF per pool and host: members elsewhere would silently drop out otherwise."""
    others = {v.address: p for p in model.pfs for v in p.vfs if p.address != pf.address}
    elsewhere = sorted({others[a].netdev or others[a].address for a in view.members if a in others})
    if elsewhere or (view.pf is not None and view.pf != pf.address):
        where = ", ".join(elsewhere) or str(view.pf)
        raise RefusedError(
            f"pool {view.name} is made of VFs of {where} on this host, not of "
            f"{pf.netdev or pf.address}; one PF per pool and host"
        )


def check_removable(view: PoolView, model: HostModel, addresses: Collection[str]) -> None:
    """Refuse (exit 4) to take a VF out of a pool while a VM holds it, --force or not."""
    by_addr = {v.address: v for p in model.pfs for v in p.vfs}
    busy = []
    for a in addresses:
        v = by_addr.get(a)
        h = holder(v) if v is not None else None
        if h is not None:
            busy.append(f"{a} ({h[0]} by {h[1]})")
    if busy:
        raise RefusedError(
            f"pool {view.name}: {', '.join(busy)}; stop that VM first (the VF cannot leave the "
            "pool under it)"
        )


def in_other_pool(claimed: Mapping[str, str], name: str, addresses: Collection[str]) -> None:
    """Refuse VFs another pool (vfctl's or not: address -> pool) already hands out."""
    both = sorted(a for a in addresses if claimed.get(a, name) != name)
    if both:
        other = claimed[both[0]]
        raise RefusedError(
            f"{', '.join(both)} already in pool {other}; a VF can be in one pool only "
            f"(`vfctl pool remove {other} …` if vfctl made it)"
        )


# ---------------------------------------------------------------- attach VM PF any


def lowest_free(model: HostModel, pf: PF, pooled: Collection[str]) -> VF:
    """The lowest VF not attached, not held or reserved, not pooled, not used by the host."""
    why: list[str] = []
    for v in sorted(pf.vfs, key=lambda v: v.index):
        if v.attached_to:
            why.append(f"vf{v.index}: attached to {v.attached_to[0].vm}")
            continue
        if holder(v) is not None:
            why.append(f"vf{v.index}: held")
            continue
        if v.address in pooled:
            why.append(f"vf{v.index}: in a pool")
            continue
        if vfio_users(model.inuse, v):
            why.append(f"vf{v.index}: /dev/vfio/{v.iommu_group} open")
            continue
        if v.netdev:
            li = model.inuse.link(v.netdev)
            if li is not None and (li.up or netdev_uses(model.inuse, v.netdev, numvfs=False)):
                why.append(f"vf{v.index}: used by the host ({v.netdev} is up)")
                continue
        return v
    name = pf.netdev or pf.address
    detail = f" ({'; '.join(why[:4])}{', …' if len(why) > 4 else ''})" if why else ""
    raise RefusedError(f"{name} has no free VF{detail}")


def stale(
    view: PoolView, model: HostModel, subsystem: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """(member, why) for entries the VM manager would fail to start a VM with.

    PVE checks each entry against the hardware at VM start (vendor/device, subsystem id,
    IOMMU group: pve-guest-common ``PVE::Mapping::PCI::assert_valid``); libvirt needs every
    listed address to still be a VF. ``subsystem``: this host's subsystem ids from sysfs.
    """
    vfs = {v.address: v for p in model.pfs for v in p.vfs}
    out = []
    for a in view.members:
        v = vfs.get(a)
        if v is None:
            out.append((a, "no such VF on this host any more"))
            continue
        group, sub = view.recorded.get(a, (None, None))
        if group is not None and v.iommu_group is not None and group != v.iommu_group:
            out.append((a, f"IOMMU group recorded {group}, now {v.iommu_group}"))
        now = subsystem.get(a)
        if sub is not None and now is not None and sub.lower() != now.lower():
            out.append((a, f"subsystem id recorded {sub}, now {now}"))
    return out
