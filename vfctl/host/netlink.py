"""Netlink (links, addresses, routes, VF info): the interface and the kernel's implementation.

A host's netlink is ``host.netlink``: :class:`KernelNetlink` (raw RTM_GETLINK dumps, pyroute2
for per-PF requests and writes) on a real host, the simulator's own on a simulated one
(``vfctl.sim``). The module functions below are what callers use; they take the Host and ask
its netlink.

pyroute2 is imported only when a real host is asked, so read-only commands stay fast.
"""

from __future__ import annotations

import os

from vfctl import vfattrs
from vfctl.model import NetLink, VFSettings

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any, Protocol

    from vfctl.host.sysfs import Host
else:
    Protocol = object  # Netlink is a Protocol for mypy; at run time nothing asks more


class Netlink(Protocol):
    """What vfctl asks of a host's rtnetlink; each kind of host implements it once."""

    def links(self) -> list[NetLink]:
        """Every interface: kind, up, addresses (up or down), master, lower device, default
        route — one dump each of links, addresses and routes."""
        ...

    def vf_info(self, pf_ifname: str) -> list[VFSettings]:
        """Per-VF settings of one PF (IFLA_VFINFO_LIST), indexed by VF number."""
        ...

    def vf_info_all(self, pf_ifnames: list[str]) -> dict[str, list[VFSettings]]:
        """:meth:`vf_info` of several PFs at once (one RTM_GETLINK dump)."""
        ...

    def vf_stats(self, pf_ifname: str) -> list[dict[str, int] | None]:
        """Per-VF traffic counters (IFLA_VF_STATS); None where unreported."""
        ...

    def set_vf(self, pf_ifname: str, vf: int, settings: dict[str, Any]) -> None:
        """Apply VF settings through the PF; raises OSError as the kernel answers."""
        ...


# ---------------------------------------------------------------- what callers use


def links(host: Host) -> list[NetLink]:
    """Every interface with what the in-use rules read: kind, up, addresses (up or down),
    master, lower device, default route — one dump each of links, addresses and routes."""
    return host.netlink.links()


def vf_info(host: Host, pf_ifname: str) -> list[VFSettings]:
    """Per-VF settings the PF driver reports (IFLA_VFINFO_LIST), indexed by VF number."""
    return host.netlink.vf_info(pf_ifname)


def vf_info_all(host: Host, pf_ifnames: list[str]) -> dict[str, list[VFSettings]]:
    """:func:`vf_info` of several PFs from one RTM_GETLINK dump (not one request per PF)."""
    if not pf_ifnames:
        return {}
    return host.netlink.vf_info_all(pf_ifnames)


def vf_stats(host: Host, pf_ifname: str) -> list[dict[str, int] | None]:
    """Per-VF traffic counters (IFLA_VF_STATS), indexed by VF number; None where unreported."""
    return host.netlink.vf_stats(pf_ifname)


def set_vf(host: Host, pf_ifname: str, vf: int, settings: dict[str, Any]) -> None:
    """Apply VF settings through the PF (RTM_SETLINK with IFLA_VFINFO_LIST); raises OSError."""
    host.netlink.set_vf(pf_ifname, vf, settings)


# IFLA_EXT_MASK bits (include/uapi/linux/rtnetlink.h): RTEXT_FILTER_VF asks for
# IFLA_VFINFO_LIST, RTEXT_FILTER_SKIP_STATS leaves out the per-VF counters nobody reads here
# (net/core/rtnetlink.c, rtnl_fill_vfinfo() skips IFLA_VF_STATS under that bit)
RTEXT_FILTER_VF = 1
RTEXT_FILTER_SKIP_STATS = 8


STAT_KEYS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
    "broadcast", "multicast", "rx_dropped", "tx_dropped",
)  # fmt: skip


# ---------------------------------------------------------------- the kernel's netlink


class KernelNetlink:
    """rtnetlink of the machine vfctl runs on. A Host whose root is not ``/`` (a snapshot, a
    copied tree) is not this machine: reads come from its sysfs or are empty, writes refused."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def _this_machine(self) -> bool:
        return self.host.top == "/"

    def _has_netlink(self) -> bool:
        return self._this_machine() and os.path.exists("/proc/net/dev")

    def links(self) -> list[NetLink]:
        if not self._has_netlink():
            return _sysfs_links(self.host)  # a snapshot: what sysfs says (no addresses, routes)
        from vfctl.host import rtnl

        return [NetLink(*row) for row in rtnl.dump_links()]

    def vf_info(self, pf_ifname: str) -> list[VFSettings]:
        if not self._has_netlink():
            return []
        msg = _pf_link(pf_ifname)
        return [] if msg is None else _vf_list(msg)

    def vf_info_all(self, pf_ifnames: list[str]) -> dict[str, list[VFSettings]]:
        if not self._has_netlink():
            return {n: [] for n in pf_ifnames}
        from vfctl.host import rtnl  # one dump does not need pyroute2 (~200 ms to import)

        got = rtnl.dump_vf_info(RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS)
        return {n: got.get(n, []) for n in pf_ifnames}

    def vf_stats(self, pf_ifname: str) -> list[dict[str, int] | None]:
        """The kernel's rtnl_fill_vfinfo() (net/core/rtnetlink.c) sends IFLA_VF_STATS unless
        the request sets RTEXT_FILTER_SKIP_STATS, filled by ndo_get_vf_stats() — zeros from a
        driver without it (igb has none)."""
        if not self._has_netlink():
            return []
        msg = _pf_link(pf_ifname)
        if msg is None:
            return []
        vfl = msg.get_attr("IFLA_VFINFO_LIST")
        out: dict[int, dict[str, int] | None] = {}
        for vfi in vfl.get_attrs("IFLA_VF_INFO") if vfl else []:
            mac = vfi.get_attr("IFLA_VF_MAC")
            if mac is None:
                continue
            st = vfi.get_attr("IFLA_VF_STATS")
            out[int(mac["vf"])] = (
                None
                if st is None
                else {k: int(st.get_attr(f"IFLA_VF_STATS_{k.upper()}") or 0) for k in STAT_KEYS}
            )
        return [out.get(i) for i in range(max(out) + 1)] if out else []

    def set_vf(self, pf_ifname: str, vf: int, settings: dict[str, Any]) -> None:
        import errno

        if not self._this_machine():  # netlink reaches this machine's kernel, not the tree
            raise OSError(
                errno.EXDEV,
                f"{self.host.root} is not this machine's root: VF settings go through netlink",
            )
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        spec = vf_spec(vf, settings)
        with IPRoute() as ip:
            idx = ip.link_lookup(ifname=pf_ifname)
            if not idx:
                raise OSError(errno.ENODEV, f"no interface {pf_ifname}")
            try:
                ip.link("set", index=idx[0], vf=spec)
            except NetlinkError as e:
                raise OSError(e.code, os.strerror(e.code)) from None


_DEVTYPE_KIND = {"bond": "bond", "bridge": "bridge", "vlan": "vlan", "macvlan": "macvlan",
                 "ipvlan": "ipvlan", "team": "team", "openvswitch": "openvswitch"}  # fmt: skip


def _sysfs_links(host: Host) -> list[NetLink]:
    out = []
    for name in host.listdir(host.CLASS_NET):
        d = f"{host.CLASS_NET}/{name}"
        kind = None
        for line in (host.read_opt(f"{d}/uevent") or "").splitlines():
            if line.startswith("DEVTYPE="):
                kind = _DEVTYPE_KIND.get(line[8:])
        if kind is None and host.isdir(f"{d}/bonding"):
            kind = "bond"
        elif kind is None and host.isdir(f"{d}/bridge"):
            kind = "bridge"
        lowers = [x[6:] for x in host.listdir(d) if x.startswith("lower_")]
        up = (host.read_opt(f"{d}/operstate") or "") == "up"
        link = lowers[0] if kind in ("vlan", "macvlan", "ipvlan") and lowers else None
        out.append(NetLink(name, kind, up, (), host.link_name(f"{d}/master"), link, False))
    return out


def _pf_link(pf_ifname: str) -> Any:
    """The PF's RTM_NEWLINK with its VF info (pyroute2), or None when no such link exists."""
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        idx = ip.link_lookup(ifname=pf_ifname)
        return ip.get_links(idx[0], ext_mask=RTEXT_FILTER_VF)[0] if idx else None


# ---------------------------------------------------------------- decoding and encoding


def _vf_list(msg: Any) -> list[VFSettings]:
    vfl = msg.get_attr("IFLA_VFINFO_LIST")
    if not vfl:
        return []
    out: dict[int, VFSettings] = {}
    for vfi in vfl.get_attrs("IFLA_VF_INFO"):
        s = _from_vfinfo(vfi)
        if s is not None:
            out[s[0]] = s[1]
    return [out.get(i, VFSettings()) for i in range(max(out) + 1)] if out else []


def _from_vfinfo(vfi: Any) -> tuple[int, VFSettings] | None:
    mac = vfi.get_attr("IFLA_VF_MAC")
    if mac is None:
        return None
    ad = False
    vl = vfi.get_attr("IFLA_VF_VLAN_LIST")
    if vl is not None:
        infos = vl.get_attrs("IFLA_VF_VLAN_INFO")
        ad = bool(infos) and infos[0].get("proto") == vfattrs.ETH_P["802.1ad"]
    u32s: dict[str, tuple[Any, ...] | None] = {}
    for g, fields in vfattrs.FIELDS.items():
        if fields:
            attr = vfi.get_attr(vfattrs.GROUP[g].nla)
            u32s[g] = tuple(attr.get(a.field) for a in fields) if attr else None
    return int(mac["vf"]), vfattrs.decode(u32s, str(mac.get("mac", "")).lower() or None, ad)


def vf_spec(vf: int, settings: dict[str, Any]) -> dict[str, Any]:
    """pyroute2's ``vf=`` argument for these settings (``vfattrs.encode``). Encoded the same by
    pyroute2 0.7.2 (bookworm) through 0.9 (tests/deb check the bytes against the kernel's
    structs)."""
    return vfattrs.encode(vf, settings)
