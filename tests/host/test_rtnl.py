"""The raw RTM_GETLINK decoder equals pyroute2's decoding plus netlink._vf_list, byte for byte."""

from __future__ import annotations

import random
import struct

import pytest

from vfctl.host import netlink, rtnl
from vfctl.host.open import open_host


def nla(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def u32s(*v: int) -> bytes:
    return struct.pack(f"={len(v)}I", *v)


def vfinfo(rng: random.Random, vf: int) -> bytes:
    val = lambda: rng.choice([0, 1, 2, 7, 100, 4095, 0xFFFFFFFF])  # noqa: E731
    parts = []
    if rng.random() < 0.95:
        parts.append(nla(rtnl.VF_MAC, u32s(vf) + rng.randbytes(6) + bytes(26)))
    for kind, n in ((rtnl.VF_VLAN, 2), (rtnl.VF_SPOOFCHK, 1), (rtnl.VF_LINK_STATE, 1),
                    (rtnl.VF_RATE, 2), (rtnl.VF_RSS, 1), (rtnl.VF_TRUST, 1), (3, 1)):  # fmt: skip
        if rng.random() < 0.8:
            parts.append(nla(kind, u32s(vf, *(val() for _ in range(n)))))
    if rng.random() < 0.5:
        proto = rng.choice([0x8100, 0x88A8, 0])
        info = u32s(vf, val(), val()) + struct.pack(">H", proto) + b"\0\0"
        parts.append(nla(rtnl.VF_VLAN_LIST, nla(rtnl.IFLA_VF_VLAN_INFO, info)))
    if rng.random() < 0.3:
        parts.append(nla(8, nla(1, struct.pack("=Q", 5))))  # IFLA_VF_STATS, ignored
    rng.shuffle(parts)
    return b"".join(parts)


def newlink(rng: random.Random, name: str, nvfs: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, rng.randint(1, 999), 0x1043, 0)
    attrs = [nla(rtnl.IFLA_IFNAME, name.encode() + b"\0"), nla(4, u32s(1500))]
    if nvfs >= 0:
        idx = list(range(nvfs))
        rng.shuffle(idx)
        attrs.append(nla(rtnl.IFLA_VFINFO_LIST,
                         b"".join(nla(rtnl.IFLA_VF_INFO, vfinfo(rng, i)) for i in idx)))  # fmt: skip
    rng.shuffle(attrs)
    return body + b"".join(attrs)


@pytest.mark.parametrize("seed", range(40))
def test_decoder_matches_pyroute2(seed: int) -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    rng = random.Random(seed)
    body = newlink(rng, f"enp{seed}s0f{seed % 2}", rng.choice([-1, 0, 1, 7, 63]))
    data = struct.pack("=IHHII", 16 + len(body), rtnl.RTM_NEWLINK, 2, 1, 0) + body
    msg = ifinfmsg(data)
    msg.decode()
    assert rtnl.link_vfs(body) == (msg.get_attr("IFLA_IFNAME"), netlink._vf_list(msg))


def test_dump_request_is_what_ip_link_sends() -> None:
    req = rtnl.request(7, rtnl.RTM_GETLINK, rtnl.vf_dump_body(9))
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq, pid) == (len(req), 18, 0x301, 7, 0)
    assert list(rtnl._attrs(req, 16 + 16)) == [(rtnl.IFLA_EXT_MASK, u32s(9))]


def test_dump_of_this_machine_parses() -> None:
    """The real kernel's answer (no VFs needed): every link by name, VF lists well formed."""
    got = rtnl.dump_vf_info(netlink.RTEXT_FILTER_VF | netlink.RTEXT_FILTER_SKIP_STATS)
    assert "lo" in got and got["lo"] == []


def test_link_dump_agrees_with_pyroute2_on_this_kernel() -> None:
    """One link/address/route dump (what the in-use rules read) says what pyroute2 says."""
    from pyroute2 import IPRoute

    got = {row[0]: row for row in rtnl.dump_links()}
    with IPRoute() as ip:
        links = ip.get_links()
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in links}
        default = {
            r.get_attr("RTA_OIF")
            for fam in (2, 10)
            for r in ip.get_routes(family=fam, table=254)
            if r["dst_len"] == 0 and r["type"] == 1
        }
        for m in links:
            name, idx = m.get_attr("IFLA_IFNAME"), m["index"]
            info = m.get_attr("IFLA_LINKINFO")
            addrs = tuple(
                f"{a.get_attr('IFA_LOCAL') or a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ip.get_addr(index=idx)
            )
            master = m.get_attr("IFLA_MASTER")
            want = (
                name,
                info.get_attr("IFLA_INFO_KIND") if info else None,
                bool(m["flags"] & 1),
                addrs,
                names.get(master) if master else None,
                idx in default,
            )
            row = got[name]
            assert (row[0], row[1], row[2], row[3], row[4], row[6]) == want
    assert got["lo"][2] and "127.0.0.1/8" in got["lo"][3]


def test_route_and_address_decoders() -> None:
    rtm = struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 254, 4, 0, 1, 0)
    nh = struct.pack("=HBBi", 8, 0, 0, 7) + struct.pack("=HBBi", 8, 0, 0, 9)
    assert rtnl.default_route_oifs(rtm + nla(rtnl.RTA_OIF, u32s(3))) == [3]
    assert rtnl.default_route_oifs(rtm + nla(rtnl.RTA_MULTIPATH, nh)) == [7, 9]
    other = struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 4, 0, 1, 0)  # 192.0.2.0/24: not default
    assert rtnl.default_route_oifs(other + nla(rtnl.RTA_OIF, u32s(3))) == []
    local = struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 255, 4, 0, 1, 0)  # table local
    assert rtnl.default_route_oifs(local + nla(rtnl.RTA_OIF, u32s(3))) == []
    ifa = struct.pack("=BBBBI", 2, 24, 0, 0, 5)
    peer = nla(rtnl.IFA_ADDRESS, bytes([10, 0, 0, 2])) + nla(rtnl.IFA_LOCAL, bytes([10, 0, 0, 1]))
    assert rtnl.addr_row(ifa + peer) == (5, "10.0.0.1/24")  # the local end, as `ip addr` shows


def test_links_of_a_foreign_tree_come_from_sysfs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A --root tree that is not this machine: kinds, masters, lowers from sysfs; no addresses."""

    net = tmp_path / "sys/class/net"
    for name, devtype in (("eth0", None), ("bond0", "bond"), ("br0", "bridge"), ("v9", "vlan")):
        (net / name).mkdir(parents=True)
        (net / name / "operstate").write_text("up\n" if name != "eth0" else "down\n")
        (net / name / "uevent").write_text(f"DEVTYPE={devtype}\n" if devtype else "INTERFACE=x\n")
    (net / "eth0/master").symlink_to("../bond0")
    (net / "bond0/master").symlink_to("../br0")
    (net / "v9/lower_eth0").symlink_to("../eth0")
    got = {li.ifname: li for li in netlink.links(open_host(tmp_path))}
    assert (got["eth0"].kind, got["eth0"].up, got["eth0"].master) == (None, False, "bond0")
    assert (got["bond0"].kind, got["bond0"].master) == ("bond", "br0")
    assert got["br0"].kind == "bridge" and got["v9"].link == "eth0"
    assert all(li.addresses == () and not li.default_route for li in got.values())


def test_a_netlink_failure_stops_the_in_use_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """No links, no in-use checks: discovery for a mutating run fails (exit 5), never passes."""
    from vfctl.errors import HostError
    from vfctl.host import inuse
    from vfctl.host.sysfs import Host

    def refused(host: Host) -> list[object]:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(netlink, "links", refused)
    with pytest.raises(HostError, match="cannot read the network links over netlink"):
        inuse.collect(open_host("/"), [])
