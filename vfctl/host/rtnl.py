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
    (g.name, g.nla_type, len(vfattrs.FIELDS[g.name]))
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


def _u32s(payload: bytes, n: int) -> tuple[int, ...] | None:
    return struct.unpack_from(f"={n}I", payload) if len(payload) >= 4 * n else None


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
    for g, kind, n in _U32_GROUPS:
        v = _u32s(got.get(kind, b""), n + 1)
        u32s[g] = v[1:] if v else None
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


def dump_request(seq: int, ext_mask: int) -> bytes:
    body = _IFI.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + struct.pack("=HHI", 8, IFLA_EXT_MASK, ext_mask)
    return _HDR.pack(_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def dump_vf_info(ext_mask: int) -> dict[str, list[VFSettings]]:
    """Every link's VF settings, by name, from one dump; OSError as the kernel answers."""
    out: dict[str, list[VFSettings]] = {}
    seq = 1
    with socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
    ) as s:
        s.bind((0, 0))
        s.sendall(dump_request(seq, ext_mask))
        while True:
            data, _, flags, _ = s.recvmsg(1 << 20)
            if flags & socket.MSG_TRUNC:
                raise OSError(os.strerror(90), "netlink dump message truncated")
            pos = 0
            while pos + _HDR.size <= len(data):
                length, kind, _, mseq, _ = _HDR.unpack_from(data, pos)
                if length < _HDR.size or pos + length > len(data):
                    raise OSError("malformed netlink message")
                body = data[pos + _HDR.size : pos + length]
                pos += (length + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                if kind == RTM_NEWLINK:
                    name, vfs = link_vfs(body)
                    if name is not None:
                        out[name] = vfs
