"""Read every in-use fact of the host once, at discovery: links (with addresses, masters,
stacked devices, default routes) and the holders of ``/dev/vfio/<group>``.

The planners decide on these facts (``vfctl.inuse``); they never probe the host themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from vfctl.errors import HostError
from vfctl.host import holders, netlink
from vfctl.host.sysfs import Host
from vfctl.model import InUse, VfioHolder


def collect(host: Host, groups: Iterable[int]) -> InUse:
    """Links from one netlink round, vfio holders (of these groups) from one /proc pass."""
    pids = holders.vfio_group_holders(host, groups)
    vfio = tuple(
        VfioHolder(g, pid, host.read_opt(f"proc/{pid}/comm") or "?")
        for g, ps in sorted(pids.items())
        for pid in ps
    )
    try:
        links = tuple(netlink.links(host))
    except OSError as e:  # without the links every refusal would pass: stop instead
        raise HostError(
            f"cannot read the network links over netlink ({e.strerror or e}); the in-use "
            "checks need them"
        ) from None
    return InUse(links=links, vfio=vfio, collected=True)


def group_pids(facts: InUse) -> dict[int, list[int]]:
    """group -> pids, as ``holders.held_by`` takes them (so /proc is scanned once)."""
    out: dict[int, list[int]] = {}
    for h in facts.vfio:
        out.setdefault(h.group, []).append(h.pid)
    return out
