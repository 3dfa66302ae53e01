"""In-use facts as data, and the rules that read them: who uses a VF, what carries the host.

Discovery fills :class:`InUse` (``vfctl.host.inuse``); the planners ask the functions here, so
``enable``, ``disable``, ``bind``, ``unbind`` and profile resizes refuse on the same facts
for the same reasons. Pure: no host access.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from vfctl.model import VF, InUse, NetLink, VfioHolder

__all__ = ["InUse", "NetLink", "User", "VfioHolder"]

VFIO = "vfio-pci"


def _kind(li: NetLink) -> str:
    return li.kind or "device"


@dataclass(frozen=True)
class User:
    """One reason a device is in use: ``hard`` ones block even --force."""

    address: str
    what: str
    hard: bool = False

    def __str__(self) -> str:
        return f"{self.address}: {self.what}"


def require(facts: InUse) -> None:
    """Planners that guard against in-use devices must not run on a model without the facts."""
    if not facts.collected:
        raise RuntimeError("in-use facts were not collected for this model (discover inuse=True)")


def host_nic_reason(facts: InUse, netdevs: Iterable[str]) -> str | None:
    """Why these netdevs carry the host's connectivity (default route through them), or None."""
    for nd in netdevs:
        for ifname in facts.chain(nd):
            li = facts.link(ifname)
            if li is not None and li.default_route:
                via = f" (via {ifname})" if ifname != nd else ""
                return f"{nd} carries the host's default route{via}"
    return None


def netdev_uses(facts: InUse, nd: str, *, numvfs: bool) -> list[str]:
    """What the host does with a VF netdev: addresses (up or down), bond/bridge/vlan above it.

    ``numvfs``: word it as the VF-count refusal always has ("is up with …") for an up link.
    """
    li = facts.link(nd)
    if li is None:
        return []
    out = []
    if li.addresses:
        addrs = ", ".join(li.addresses)
        if numvfs and li.up:
            out.append(f"netdev {nd} is up with {addrs}")
        elif numvfs:
            out.append(f"netdev {nd} is down but has {addrs}")
        else:
            out.append(f"{nd} has addresses {addrs}" + ("" if li.up else " (link down)"))
    for up in facts.uppers(nd):
        who = f"netdev {nd}" if numvfs else nd
        if up.ifname == li.master:
            out.append(f"{who} is a member of {_kind(up)} {up.ifname}")
        else:
            out.append(f"{who} has {_kind(up)} {up.ifname} on top")
    return out


def vfio_users(facts: InUse, vf: VF) -> list[str]:
    """The processes holding the VF's /dev/vfio group, worded ``pid N (comm, VM x)``."""
    if vf.driver != VFIO or vf.iommu_group is None:
        return []
    held = vf.held_by
    out = []
    for h in facts.holders(vf.iommu_group):
        vm = f", VM {held.vm}" if held and held.vm and held.pid == h.pid else ""
        out.append(f"pid {h.pid} ({h.comm}{vm})")
    return out


def pool_user(vf: VF) -> tuple[str, bool] | None:
    """(why, hard) when the VF is an entry of a PVE pool; hard: not vfctl's to move, even --force.

    A pool's entries are PVE's to hand out at VM start; only a pool vfctl created may be
    overridden with --force. At boot (no VM manager asked) pools are unknown: only the host's
    own facts (held_by, netdevs) count then.
    """
    if vf.pool is None:
        return None
    why = f"entry of {vf.pool.describe()}"
    if not vf.pool.managed:
        why += "; vfctl does not change a mapping it did not create: remove the entry in PVE first"
    return why, not vf.pool.managed


def vf_users(facts: InUse, vfs: Sequence[VF], skip_netdevs: Collection[str] = ()) -> list[User]:
    """Everything that uses these VFs, for removing them (a VF-count change).

    ``skip_netdevs``: VF addresses whose netdev uses are overridden already (--force-host-nic).
    """
    out: list[User] = []
    for vf in vfs:
        for h in vfio_users(facts, vf):
            out.append(User(vf.address, f"/dev/vfio/{vf.iommu_group} held open by {h}", True))
        pu = pool_user(vf)
        if pu is not None:
            out.append(User(vf.address, pu[0], pu[1]))
        if vf.held_by is not None and vf.held_by.pid is None:
            out.append(User(vf.address, f"reserved by {vf.held_by.describe()}"))
        for a in vf.attached_to:
            out.append(User(vf.address, f"attached to {a.backend} VM {a.vm} ({a.element})"))
        if vf.netdev and vf.address not in skip_netdevs:
            out += [User(vf.address, w) for w in netdev_uses(facts, vf.netdev, numvfs=True)]
    return out
