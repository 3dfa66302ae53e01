"""One RTM_GETLINK dump with VF info, over a raw netlink socket: what `list` needs from netlink.

pyroute2 costs more to import (~200 ms of CPU here) than the rest of a `vfctl list` on a real
host, for one request. This module sends the dump iproute2's `ip link` sends
(RTM_GETLINK, NLM_F_DUMP, IFLA_EXT_MASK = RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS) and decodes
only IFLA_IFNAME and IFLA_VFINFO_LIST, into the same VFSettings that netlink._from_vfinfo makes
from pyroute2's messages (tests/host/test_rtnl.py feeds both the same bytes). Layouts:
include/uapi/linux/rtnetlink.h, if_link.h (struct ifla_vf_*); the kernel fills them in
net/core/rtnetlink.c, rtnl_fill_vfinfo(). Writes (set_vf) stay with pyroute2.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from vfctl import vfattrs
from vfctl.model import VFSettings

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME, IFLA_VFINFO_LIST, IFLA_EXT_MASK = 3, 22, 29
IFLA_VF_INFO = 1
VF_MAC, VF_VLAN, VF_SPOOFCHK, VF_LINK_STATE, VF_RATE, VF_RSS, VF_TRUST = (
    vfattrs.GROUP[g].nla_type
    for g in ("mac", "vlan", "spoofchk", "link_state", "rate", "query_rss", "trust")
)
VF_VLAN_LIST, IFLA_VF_VLAN_INFO = vfattrs.IFLA_VF_VLAN_LIST, vfattrs.IFLA_VF_VLAN_INFO
# the u32 attributes after IFLA_VF_MAC: (group, kernel type, u32s after ``vf``)
_U32_GROUPS = tuple(
    (g.name, g.nla_type, struct.Struct(f"={1 + len(vfattrs.FIELDS[g.name])}I"))
    for g in vfattrs.GROUPS
    if vfattrs.FIELDS[g.name]
)
_HDR = struct.Struct("=IHHII")  # nlmsghdr
_IFI = struct.Struct("=BxHiII")  # ifinfomsg


def _attrs(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink attribute in data[start:end]; nested flag masked off."""
    end = len(data) if end is None else end
    pos = start
    while pos + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4 or pos + length > end:
            return
        yield kind & 0x3FFF, data[pos + 4 : pos + length]
        pos += (length + 3) & ~3


def vf_settings(vfinfo: bytes) -> tuple[int, VFSettings] | None:
    """One IFLA_VF_INFO: (VF index, settings), None without IFLA_VF_MAC (as netlink.py)."""
    got: dict[int, bytes] = {}
    for kind, payload in _attrs(vfinfo):
        got.setdefault(kind, payload)  # the first of each, as pyroute2's get_attr
    mac_raw = got.get(VF_MAC)
    if mac_raw is None or len(mac_raw) < 4 + 32:
        return None
    vf = struct.unpack_from("=I", mac_raw)[0]
    mac = ":".join(f"{b:02x}" for b in mac_raw[4:10])
    ad = False
    vlist = got.get(VF_VLAN_LIST)
    if vlist is not None:
        infos = [p for k, p in _attrs(vlist) if k == IFLA_VF_VLAN_INFO and len(p) >= 14]
        ad = bool(infos) and struct.unpack_from(">H", infos[0], 12)[0] == vfattrs.ETH_P["802.1ad"]
    u32s: dict[str, tuple[int, ...] | None] = {}
    for g, kind, st in _U32_GROUPS:
        p = got.get(kind)
        if p is not None and len(p) >= st.size:
            u32s[g] = st.unpack_from(p)[1:]
    return vf, vfattrs.decode(u32s, mac or None, ad)


def link_vfs(msg: bytes) -> tuple[str | None, list[VFSettings]]:
    """One RTM_NEWLINK body (after nlmsghdr): its name and VF settings by index."""
    name: str | None = None
    vfl: bytes | None = None
    for kind, payload in _attrs(msg, _IFI.size):
        if kind == IFLA_IFNAME and name is None:
            name = payload.split(b"\0", 1)[0].decode(errors="surrogateescape")
        elif kind == IFLA_VFINFO_LIST and vfl is None:
            vfl = payload
    out: dict[int, VFSettings] = {}
    for kind, payload in _attrs(vfl or b""):
        if kind == IFLA_VF_INFO:
            s = vf_settings(payload)
            if s is not None:
                out[s[0]] = s[1]
    return name, [out.get(i, VFSettings()) for i in range(max(out) + 1)] if out else []


def vf_dump_body(ext_mask: int) -> bytes:
    """An RTM_GETLINK dump request's body asking for VF info (what `ip link` sends)."""
    return _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + struct.pack("=HHI", 8, IFLA_EXT_MASK, ext_mask)


def request(seq: int, kind: int, body: bytes) -> bytes:
    """A dump request: nlmsghdr + body."""
    return _HDR.pack(_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def dump_vf_info(ext_mask: int) -> dict[str, list[VFSettings]]:
    """Every link's VF settings, by name, from one dump; OSError as the kernel answers."""
    out: dict[str, list[VFSettings]] = {}
    body = vf_dump_body(ext_mask)
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
    ) as s:
        s.bind((0, 0))
        for kind, msg in _dump(s, 1, RTM_GETLINK, body):
            if kind == RTM_NEWLINK:
                name, vfs = link_vfs(msg)
                if name is not None:
                    out[name] = vfs
    return out


# ---------------------------------------------------------------- links, addresses, routes
# What the in-use rules need of every interface, from one RTM_GETLINK, one RTM_GETADDR and one
# RTM_GETROUTE dump on one socket (iproute2's `ip -d link`, `ip addr`, `ip route` send the
# same). Layouts: include/uapi/linux/if_link.h (IFLA_*), if_addr.h (struct ifaddrmsg, IFA_*),
# rtnetlink.h (struct rtmsg, RTA_*, struct rtnexthop); filled by net/core/rtnetlink.c
# rtnl_fill_ifinfo(), net/ipv4/devinet.c inet_fill_ifaddr(), net/ipv4/fib_semantics.c
# fib_dump_info() (and their IPv6 twins).
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_INFO_KIND = 5, 10, 18, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_MULTIPATH, RTA_TABLE = 4, 9, 15
RT_TABLE_MAIN, RTN_UNICAST = 254, 1
IFF_UP = 1
_IFA = struct.Struct("=BBBBI")  # ifaddrmsg
_RTM = struct.Struct("=BBBBBBBBI")  # rtmsg
_NH = struct.Struct("=HBBi")  # rtnexthop


def _dump(s: socket.socket, seq: int, kind: int, body: bytes) -> Iterator[tuple[int, bytes]]:
    """(message type, body) of each answer to one dump request; OSError as the kernel answers."""
    s.sendall(request(seq, kind, body))
    while True:
        data, _, flags, _ = s.recvmsg(1 << 20)
        if flags & socket.MSG_TRUNC:
            raise OSError(90, "netlink dump message truncated")
        pos = 0
        while pos + _HDR.size <= len(data):
            length, mkind, _, mseq, _ = _HDR.unpack_from(data, pos)
            if length < _HDR.size or pos + length > len(data):
                raise OSError("malformed netlink message")
            msg = data[pos + _HDR.size : pos + length]
            pos += (length + 3) & ~3
            if mseq != seq:
                continue
            if mkind == NLMSG_DONE:
                return
            if mkind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", msg)[0]
                if err:
                    raise OSError(err, os.strerror(err))
                return
            yield mkind, msg


def _str(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="surrogateescape")


def link_row(msg: bytes) -> tuple[int, str, int, int | None, int | None, str | None] | None:
    """One RTM_NEWLINK: (ifindex, name, flags, master index, lower index, kind)."""
    if len(msg) < _IFI.size:
        return None
    _, _, index, flags, _ = _IFI.unpack_from(msg)
    name: str | None = None
    master = lower = None
    kind = None
    for k, p in _attrs(msg, _IFI.size):
        if k == IFLA_IFNAME and name is None:
            name = _str(p)
        elif k == IFLA_MASTER and len(p) >= 4:
            master = struct.unpack_from("=I", p)[0] or None
        elif k == IFLA_LINK and len(p) >= 4:
            lower = struct.unpack_from("=I", p)[0] or None
        elif k == IFLA_LINKINFO:
            for k2, p2 in _attrs(p):
                if k2 == IFLA_INFO_KIND:
                    kind = _str(p2) or None
    if name is None:
        return None
    return index, name, flags, master, (lower if lower != index else None), kind


def addr_row(msg: bytes) -> tuple[int, str] | None:
    """One RTM_NEWADDR: (ifindex, "address/prefix"); IFA_LOCAL first, as iproute2 shows it."""
    if len(msg) < _IFA.size:
        return None
    family, plen, _, _, index = _IFA.unpack_from(msg)
    got: dict[int, bytes] = {}
    for k, p in _attrs(msg, _IFA.size):
        got.setdefault(k, p)
    raw = got.get(IFA_LOCAL, got.get(IFA_ADDRESS))
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        return index, f"{socket.inet_ntop(family, raw)}/{plen}"
    except ValueError:
        return None


def default_route_oifs(msg: bytes) -> list[int]:
    """One RTM_NEWROUTE: the interfaces a main-table unicast default route leaves through."""
    if len(msg) < _RTM.size:
        return []
    _, dst_len, _, _, table, _, _, rtype, _ = _RTM.unpack_from(msg)
    out: list[int] = []
    for k, p in _attrs(msg, _RTM.size):
        if k == RTA_TABLE and len(p) >= 4:
            table = struct.unpack_from("=I", p)[0]
        elif k == RTA_OIF and len(p) >= 4:
            out.append(struct.unpack_from("=I", p)[0])
        elif k == RTA_MULTIPATH:
            pos = 0
            while pos + _NH.size <= len(p):
                nlen, _, _, idx = _NH.unpack_from(p, pos)
                if nlen < _NH.size:
                    break
                out.append(idx)
                pos += (nlen + 3) & ~3
    if dst_len != 0 or table != RT_TABLE_MAIN or rtype != RTN_UNICAST:
        return []
    return out


Link = tuple[str, str | None, bool, tuple[str, ...], str | None, str | None, bool]


def dump_links() -> list[Link]:
    """Every interface: (name, kind, up, addresses, master, lower, default route)."""
    rows = []
    addrs: dict[int, list[str]] = {}
    default: set[int] = set()
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
    ) as s:
        s.bind((0, 0))
        for kind, msg in _dump(s, 1, RTM_GETLINK, _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            row = link_row(msg) if kind == RTM_NEWLINK else None
            if row is not None:
                rows.append(row)
        for kind, msg in _dump(s, 2, RTM_GETADDR, _IFA.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            a = addr_row(msg) if kind == RTM_NEWADDR else None
            if a is not None:
                addrs.setdefault(a[0], []).append(a[1])
        body = _RTM.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
        for kind, msg in _dump(s, 3, RTM_GETROUTE, body):
            if kind == RTM_NEWROUTE:
                default.update(default_route_oifs(msg))
    names = {r[0]: r[1] for r in rows}
    return [
        (
            name,
            kind,
            bool(flags & IFF_UP),
            tuple(addrs.get(idx, ())),
            names.get(master) if master else None,
            names.get(lower) if lower else None,
            idx in default,
        )
        for idx, name, flags, master, lower, kind in rows
    ]
