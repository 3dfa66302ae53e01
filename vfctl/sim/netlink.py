"""The simulated host's rtnetlink: :class:`vfctl.host.netlink.Netlink` over the simulator's
netdev model (addresses, masters, routes and VF settings live in its state, not in sysfs)."""

from __future__ import annotations

from vfctl.host.sysfs import Host
from vfctl.model import NetLink, VFSettings
from vfctl.sim import netdevs

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def _settings(d: dict[str, Any]) -> VFSettings:
    return VFSettings(**{k: d.get(k) for k in VFSettings.__match_args__})


class SimNetlink:
    """Each call is one locked read or write of the simulator's state (as one netlink request)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def links(self) -> list[NetLink]:
        return [
            NetLink(
                d["ifname"],
                None if d.get("kind") == "device" else d.get("kind"),
                bool(d.get("up")),
                tuple(d.get("addresses", ())),
                d.get("master"),
                d.get("link"),
                bool(d.get("default_route")),
            )
            for d in netdevs.links(self.host.top)
        ]

    def vf_info(self, pf_ifname: str) -> list[VFSettings]:
        return [_settings(d) for d in netdevs.vf_info(self.host.top, pf_ifname)]

    def vf_info_all(self, pf_ifnames: list[str]) -> dict[str, list[VFSettings]]:
        got = netdevs.vf_info_all(self.host.top, pf_ifnames)
        return {n: [_settings(d) for d in got[n]] for n in pf_ifnames}

    def vf_stats(self, pf_ifname: str) -> list[dict[str, int] | None]:
        return netdevs.vf_stats(self.host.top, pf_ifname)

    def set_vf(self, pf_ifname: str, vf: int, settings: dict[str, Any]) -> None:
        netdevs.set_vf(self.host.top, pf_ifname, vf, **settings)
