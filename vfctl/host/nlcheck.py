"""Self-check of the installed pyroute2: do vfctl's VF settings encode as the kernel reads them?

Debian ships pyroute2 0.7.2 (bookworm) and 0.7.7 (trixie); pip brings 0.9. The kernel takes
IFLA_VF_* payloads as fixed C structs (include/uapi/linux/if_link.h: ifla_vf_mac {u32 vf;
u8 mac[32]}, ifla_vf_vlan {vf, vlan, qos}, ifla_vf_rate {vf, min, max}, ifla_vf_spoofchk,
ifla_vf_link_state and ifla_vf_trust {vf, setting}). This encodes one RTM_SETLINK message
with the installed pyroute2, walks its bytes without pyroute2, and compares.
``python3 -m vfctl.host.nlcheck`` prints one line and exits 0 when every attribute matches.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from typing import Any

from vfctl.host.netlink import vf_spec

IFLA_VFINFO_LIST, IFLA_VF_INFO = 22, 1
# attribute type -> (name, payload size, u32 fields after vf)
KERNEL = {
    1: ("IFLA_VF_MAC", 36, None),
    2: ("IFLA_VF_VLAN", 12, ("vlan", "qos")),
    4: ("IFLA_VF_SPOOFCHK", 8, ("spoofchk",)),
    5: ("IFLA_VF_LINK_STATE", 8, ("link_state",)),
    6: ("IFLA_VF_RATE", 12, ("min_tx_rate", "max_tx_rate")),
    9: ("IFLA_VF_TRUST", 8, ("trust",)),
}
SAMPLE = {
    "mac": "02:00:00:00:00:01",
    "vlan": 10,
    "qos": 2,
    "vlan_proto": "802.1Q",
    "spoofchk": False,
    "trust": True,
    "link_state": "disable",
    "min_tx_rate": 100,
    "max_tx_rate": 500,
}
WANT = {"vlan": 10, "qos": 2, "spoofchk": 0, "trust": 1, "link_state": 2}
WANT.update(min_tx_rate=100, max_tx_rate=500)


def _tlvs(b: bytes) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i + 4 <= len(b):
        ln, t = struct.unpack_from("=HH", b, i)
        if ln < 4:
            return
        yield t & 0x3FFF, b[i + 4 : i + ln]
        i += (ln + 3) & ~3


def encode(vf: int, settings: dict[str, Any]) -> bytes:
    """The RTM_SETLINK message the installed pyroute2 builds for ``ip.link('set', vf=…)``."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.requests.link import LinkIPRouteFilter

    msg = ifinfmsg()
    msg["index"] = 1
    msg["attrs"] = [("IFLA_VFINFO_LIST", LinkIPRouteFilter("set").get_vf(vf_spec(vf, settings)))]
    msg.encode()
    return bytes(msg.data)


def problems(data: bytes, vf: int = 3) -> list[str]:
    """Differences between the message and the kernel's structs (empty: all good)."""
    top = dict(_tlvs(data[32:]))  # nlmsghdr (16) + ifinfomsg (16)
    if IFLA_VFINFO_LIST not in top:
        return ["no IFLA_VFINFO_LIST"]
    info = dict(_tlvs(top[IFLA_VFINFO_LIST])).get(IFLA_VF_INFO)
    if info is None:
        return ["no IFLA_VF_INFO"]
    attrs = dict(_tlvs(info))
    out = []
    for t, (name, size, fields) in KERNEL.items():
        got = attrs.get(t)
        if got is None:
            out.append(f"{name} missing")
            continue
        if len(got) != size:
            out.append(f"{name}: {len(got)} bytes, the kernel reads {size}")
            continue
        words = struct.unpack_from(f"={size // 4 if fields else 1}I", got)
        if words[0] != vf:
            out.append(f"{name}: vf {words[0]}, want {vf}")
        for k, v in zip(fields or (), words[1:], strict=False):
            if v != WANT[k]:
                out.append(f"{name}: {k}={v}, want {WANT[k]}")
        if fields is None and got[4:10] != bytes.fromhex("020000000001"):
            out.append(f"{name}: mac {got[4:10].hex()}")
    return out


def qinq_info_size() -> int:
    """Bytes the installed pyroute2 gives IFLA_VF_VLAN_INFO (802.1ad). The kernel's struct
    ifla_vf_vlan_info is 16 (3 u32 + be16 + padding); rtnetlink's do_setvfinfo() rejects shorter
    ones with EINVAL since "nla_len(attr) < sizeof(struct ifla_vf_vlan_info)" (older kernels
    read only the first 14)."""
    spec = vf_spec(3, {"vlan": 10, "qos": 0, "vlan_proto": "802.1ad"})
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.requests.link import LinkIPRouteFilter

    msg = ifinfmsg()
    msg["index"] = 1
    msg["attrs"] = [("IFLA_VFINFO_LIST", LinkIPRouteFilter("set").get_vf(spec))]
    msg.encode()
    top = dict(_tlvs(bytes(msg.data)[32:]))
    info = dict(_tlvs(dict(_tlvs(top[IFLA_VFINFO_LIST]))[IFLA_VF_INFO]))
    vlist = dict(_tlvs(info[12]))  # IFLA_VF_VLAN_LIST -> IFLA_VF_VLAN_INFO
    return len(vlist[1])


def main() -> int:
    import pyroute2

    bad = problems(encode(3, SAMPLE))
    ver = getattr(pyroute2, "__version__", "?")
    if bad:
        print(f"pyroute2 {ver}: VF settings mis-encoded: {'; '.join(bad)}")
        return 1
    print(f"pyroute2 {ver}: VF settings encode as the kernel's structs")
    size = qinq_info_size()
    if size != 16:
        print(
            f"pyroute2 {ver}: note: 802.1ad VLANs encode in {size} bytes, not 16: kernels that "
            "check the length refuse them (EINVAL); 802.1Q is not affected"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
