"""The netlink side of the simulated host: links with addresses, masters and routes, and
per-VF settings set and read through the PF with igb/ixgbe semantics (ndo_set_vf_*,
rtnl_fill_vfinfo). Addresses, routes and VF settings live in the state, not in sysfs."""

from __future__ import annotations

import errno

from vfctl import vfattrs
from vfctl.sim import drivers, state
from vfctl.sim.common import VF_DEFAULTS, Dev, State, oserr

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def _netdev(st: State, ifname: str) -> tuple[str, Dev] | None:
    for bdf, dev in st["devices"].items():
        net = dev.get("net")
        if net and net["ifname"] == ifname and drivers.is_net(st, dev["driver"]):
            return bdf, dev
    return None


def _pf_for(st: State, ifname: str) -> tuple[str, Dev]:
    found = _netdev(st, ifname)
    if found is None:
        raise oserr(errno.ENODEV, f"no such network device {ifname!r}")
    return found


def vf_info(root: str | Path, pf_ifname: str) -> list[dict[str, Any]]:
    """IFLA_VFINFO_LIST of a PF netdev, one dict per VF index."""
    with state.locked(root, read_only=True) as st:
        return _vf_info(st, pf_ifname)


def vf_info_all(root: str | Path, pf_ifnames: list[str]) -> dict[str, list[dict[str, Any]]]:
    """vf_info of several PFs at once, as one RTM_GETLINK dump answers them (one state load)."""
    with state.locked(root, read_only=True) as st:
        return {n: _vf_info(st, n) for n in pf_ifnames}


def _vf_info(st: State, pf_ifname: str) -> list[dict[str, Any]]:
    _, dev = _pf_for(st, pf_ifname)
    sr = dev.get("sriov")
    if sr is None:
        return []
    out = [{"vf": i, **s} for i, s in enumerate(sr["vfs"])]
    if drivers.driver_spec(st, dev["driver"]).get("vf_ops") == "igb":
        for x in out:  # igb_ndo_get_vf_config() leaves rss_query_en unreported (-1)
            x["query_rss"] = None
    return out


def vf_stats(root: str | Path, pf_ifname: str) -> list[dict[str, int] | None]:
    """IFLA_VF_STATS of a PF's VFs: the counters tests put in ``vf_stats``, else zeros (what
    the kernel reports for a driver without ndo_get_vf_stats)."""
    with state.locked(root, read_only=True) as st:
        bdf, dev = _pf_for(st, pf_ifname)
        sr = dev.get("sriov")
        if sr is None:
            return []
        keys = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes",
                "broadcast", "multicast", "rx_dropped", "tx_dropped")  # fmt: skip
        given = st.get("vf_stats", {}).get(bdf, {})
        return [{k: int(given.get(str(i), {}).get(k, 0)) for k in keys} for i in range(sr["num"])]


_SET_ORDER = tuple(g.name for g in vfattrs.GROUPS)  # do_setvfinfo() order


_LINK_STATES = {"auto": "auto", "enable": "enable", "disable": "disable",
                0: "auto", 1: "enable", 2: "disable"}  # fmt: skip


def set_vf(root: str | Path, pf_ifname: str, vf: int, **settings: Any) -> None:
    """ndo_set_vf_* with igb/ixgbe semantics, applied in rtnetlink's order: an attribute that
    fails leaves the ones before it applied, as do_setvfinfo() does."""
    import json
    from pathlib import Path

    from vfctl.sim import faults

    root = Path(root)
    known = set(VF_DEFAULTS)
    unknown = set(settings) - known
    if unknown:
        raise TypeError(f"unknown VF settings: {sorted(unknown)}")
    with state.locked(root) as st:
        _, dev = _pf_for(st, pf_ifname)
        groups: dict[str, dict[str, Any]] = {}
        for key, val in settings.items():
            groups.setdefault(vfattrs.GROUP_OF[key], {})[key] = val
        for group in _SET_ORDER:
            if group not in groups:
                continue
            path = f"netlink/{pf_ifname}/vf{vf}/{group}"
            shown = json.dumps(groups[group], sort_keys=True)
            result = "ok"
            try:
                fault = faults.fault_for(root, st, [path], shown)
                _set_one(st, dev, vf, group, groups[group], fault, path)
            except OSError as e:
                result = errno.errorcode.get(e.errno or 0, str(e.errno))
                raise
            finally:
                state.log(root, path, shown, result)


def _set_one(
    st: State, dev: Dev, vf: int, group: str, vals: dict[str, Any],
    fault: dict[str, Any] | None, path: str,
) -> None:  # fmt: skip
    import re

    from vfctl.sim import faults

    sr = dev.get("sriov")
    ops = drivers.driver_spec(st, dev["driver"]).get("vf_ops", "generic")
    if sr is None or not isinstance(vf, int) or vf < 0 or vf >= sr["num"]:
        raise oserr(errno.EINVAL, f"{path}: VF index out of range")
    cur = sr["vfs"][vf]
    new: dict[str, Any] = {}
    if group == "mac":
        mac = str(vals["mac"]).lower()
        if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) or int(mac[:2], 16) & 1:
            raise oserr(errno.EINVAL, f"{path}: invalid unicast MAC {vals['mac']!r}")
        new["mac"] = mac
    elif group == "vlan":
        vlan = int(vals.get("vlan", cur["vlan"]))
        qos = int(vals.get("qos", 0))
        proto = str(vals.get("vlan_proto", "802.1Q"))
        if not 0 <= vlan <= 4095 or not 0 <= qos <= 7:
            raise oserr(errno.EINVAL, f"{path}: vlan 0-4095, qos 0-7")
        if proto not in ("802.1Q", "802.1ad"):
            raise oserr(errno.EINVAL, f"{path}: unknown vlan protocol {proto!r}")
        if proto != "802.1Q" and ops in ("igb", "ixgbe"):
            raise oserr(errno.EPROTONOSUPPORT, f"{path}: only 802.1Q")
        new.update(vlan=vlan, qos=qos, vlan_proto=proto)
    elif group == "rate":
        lo = int(vals.get("min_tx_rate", cur["min_tx_rate"]))
        hi = int(vals.get("max_tx_rate", cur["max_tx_rate"]))
        _check_rate(dev, ops, lo, hi, path)
        new.update(min_tx_rate=lo, max_tx_rate=hi)
    elif group == "link_state":
        state = _LINK_STATES.get(vals["link_state"])
        if ops == "igb":
            raise oserr(errno.EOPNOTSUPP, f"{path}: igb has no ndo_set_vf_link_state")
        if state is None:
            raise oserr(errno.EINVAL, f"{path}: link state auto|enable|disable")
        new["link_state"] = state
    elif group == "query_rss" and ops == "igb":
        raise oserr(errno.EOPNOTSUPP, f"{path}: igb has no ndo_set_vf_rss_query_en")
    else:
        new[group] = bool(vals[group])
    faults.fail_if(fault, path)
    cur.update(new)
    if new.get("mac", "00:00:00:00:00:00") != "00:00:00:00:00:00":
        for vdev in st["devices"].values():
            pf = vdev.get("physfn")
            if pf and st["devices"][pf] is dev and vdev.get("vf_index") == vf and vdev.get("net"):
                vdev["net"]["mac"] = new["mac"]


def _check_rate(dev: Dev, ops: str, lo: int, hi: int, path: str) -> None:
    net = dev.get("net") or {}
    carrier = bool(net.get("up") and net.get("carrier"))
    speed = int(net.get("speed", -1))
    if ops == "igb":
        if dev["device"] not in ("10c9", "10e6", "10e7", "10e8", "1526", "150a", "1518"):
            raise oserr(errno.EOPNOTSUPP, f"{path}: VF rate limits need an 82576")
        if lo:
            raise oserr(errno.EINVAL, f"{path}: igb has no min_tx_rate")
        if not carrier or hi < 0 or hi > speed:
            raise oserr(errno.EINVAL, f"{path}: PF has no carrier or rate above link speed")
    elif ops == "ixgbe":
        if not carrier or speed != 10000 or lo:
            raise oserr(errno.EINVAL, f"{path}: needs carrier at 10Gb/s and no min_tx_rate")
        if hi and (hi <= 10 or hi > speed):
            raise oserr(errno.EINVAL, f"{path}: max_tx_rate 11..{speed}")
    elif lo < 0 or hi < 0 or (hi and lo > hi):
        raise oserr(errno.EINVAL, f"{path}: min_tx_rate above max_tx_rate")


def link_info(root: str | Path, ifname: str) -> dict[str, Any]:
    """What the host-NIC safety checks need: addresses, master, state, default route."""
    with state.locked(root, read_only=True) as st:
        return _link_info(st, ifname)


def _link_info(st: State, ifname: str) -> dict[str, Any]:
    from vfctl.sim import render_net

    found = _netdev(st, ifname)
    if found is not None:
        bdf, dev = found
        net = dev["net"]
        kind, ports = "device", []
    elif ifname in st["vnet"]:
        bdf, net = None, st["vnet"][ifname]
        kind, ports = net["kind"], list(net.get("ports", []))
    else:
        raise oserr(errno.ENODEV, f"no such network device {ifname!r}")
    routes = [r for r in st.get("routes", []) if r.get("dev") == ifname]
    return {
        "ifname": ifname,
        "ifindex": net["ifindex"],
        "kind": kind,
        "pci_address": bdf,
        "address": net["mac"],
        "mtu": net["mtu"],
        "up": bool(net["up"]),
        "carrier": bool(net.get("carrier", net["up"])),
        "operstate": render_net.operstate(net, kind),
        "master": net.get("master"),
        "link": net.get("link"),  # the lower device of a vlan/macvlan (IFLA_LINK)
        "ports": ports,
        "addresses": list(st.get("addresses", {}).get(ifname, [])),
        "routes": routes,
        "default_route": any(r.get("dst") == "default" for r in routes),
    }


def links(root: str | Path) -> list[dict[str, Any]]:
    """Every link as :func:`link_info` describes it, from one state load (one RTM_GETLINK dump,
    one RTM_GETADDR and one RTM_GETROUTE dump on a real host)."""
    from vfctl.sim import render_net

    with state.locked(root, read_only=True) as st:
        names = [*(n for n, (b, _) in render_net.visible_netdevs(st).items() if b), *st["vnet"]]
        return [_link_info(st, n) for n in names]


def set_link(root: str | Path, ifname: str, up: bool, carrier: bool | None = None) -> None:
    """``ip link set IF up|down`` (and, for tests, a cable plugged in or not)."""
    with state.locked(root) as st:
        found = _netdev(st, ifname)
        net = found[1]["net"] if found else st["vnet"].get(ifname)
        if net is None:
            raise oserr(errno.ENODEV, f"no such network device {ifname!r}")
        net["up"] = bool(up)
        net["carrier"] = bool(up if carrier is None else carrier) and bool(up)
        if found and net["carrier"] and int(net.get("speed", -1)) < 0:
            net["speed"] = 10000 if found[1]["device"] == "10fb" else 1000
