"""Rendering the network devices: ``sys/class/net/<if>`` and its attributes, bridge and
port links, for PF/VF netdevs and virtual devices (bridges, bonds, loopback)."""

from __future__ import annotations

import os
from pathlib import Path

from vfctl.sim import drivers, tree
from vfctl.sim.common import DEVICES, State

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def operstate(net: dict[str, Any], kind: str) -> str:
    if kind == "loopback":
        return "unknown"
    return "up" if net["up"] and net.get("carrier", True) else "down"


def visible_netdevs(st: State) -> dict[str, tuple[str | None, dict[str, Any]]]:
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for bdf, dev in st["devices"].items():
        if dev.get("net") and drivers.is_net(st, dev["driver"]):
            out[dev["net"]["ifname"]] = (bdf, dev["net"])
    for name, net in st["vnet"].items():
        out[name] = (None, net)
    return out


def _netdir(root: Path, st: State, ifname: str, bdf: str | None) -> Path:
    if bdf is None:
        return root / DEVICES / "virtual/net" / ifname
    return root / DEVICES / str(st["devices"][bdf]["path"]) / "net" / ifname


def render_net(root: Path, st: State) -> None:
    nets = visible_netdevs(st)
    cls = root / "sys/class/net"
    cls.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(cls):
        if name not in nets:
            target = Path(os.path.realpath(cls / name))
            if (root / DEVICES / "virtual/net") in target.parents:
                tree.rm(target)
            tree.rm(cls / name)
    for name, (bdf, net) in sorted(nets.items()):
        nd = _netdir(root, st, name, bdf)
        port_dirs = sorted(
            (p, str(_netdir(root, st, p, nets[p][0]))) for p in net.get("ports", []) if p in nets
        )
        payload = [str(nd), net, net.get("master") in nets, port_dirs]
        fp = tree.changed(st, f"net:{name}", payload, cls / name)
        if fp is None:
            continue
        st["_fp"][f"net:{name}"] = fp
        nd.mkdir(parents=True, exist_ok=True)
        kind = "device" if bdf else net["kind"]
        up, carrier = bool(net["up"]), bool(net.get("carrier", net["up"]))
        attrs = {
            "address": net["mac"],
            "broadcast": "00:00:00:00:00:00" if kind == "loopback" else "ff:ff:ff:ff:ff:ff",
            "addr_len": "6",
            "ifindex": str(net["ifindex"]),
            "iflink": str(net["ifindex"]),
            "mtu": str(net["mtu"]),
            "type": "772" if kind == "loopback" else "1",
            "flags": "0x9" if kind == "loopback" else ("0x1003" if up else "0x1002"),
            "operstate": operstate(net, kind),
            "carrier": "1" if (carrier and up) else "0",
            "dev_id": "0x0",
            "dev_port": "0",
            "tx_queue_len": "1000",
        }
        if bdf:
            attrs["speed"] = str(net.get("speed", -1) if carrier and up else -1)
            attrs["duplex"] = "full" if carrier and up else "unknown"
            tree.link(nd / "device", root / DEVICES / st["devices"][bdf]["path"])
        for k, v in attrs.items():
            tree.put(nd / k, v + "\n")
        master = net.get("master")
        for name2 in os.listdir(nd):
            if name2.startswith("upper_") and name2 != f"upper_{master}":
                (nd / name2).unlink()
        if master and master in nets:
            mdir = _netdir(root, st, master, None)
            # net/bridge/br_sysfs_if.c adds the "brport" directory to a bridge's ports only; a
            # bond's port gets "bonding_slave" instead (drivers/net/bonding/bond_sysfs_slave.c)
            if nets[master][1].get("kind") == "bridge":
                (nd / "brport").mkdir(exist_ok=True)
                tree.put(nd / "brport/state", "3\n")
            else:
                tree.rm(nd / "brport")
            tree.link(nd / "master", mdir)
            tree.link(nd / f"upper_{master}", mdir)
        else:
            for x in ("master", "brport"):
                tree.rm(nd / x)
        if kind == "bridge":
            (nd / "bridge").mkdir(exist_ok=True)
            for k, v in {"stp_state": "0", "forward_delay": "0", "vlan_filtering": "0"}.items():
                tree.put(nd / "bridge" / k, v + "\n")
            brif = nd / "brif"
            brif.mkdir(exist_ok=True)
            ports = [p for p in net.get("ports", []) if p in nets]
            for p in os.listdir(brif):
                if p not in ports:
                    tree.rm(brif / p)
            for p in os.listdir(nd):
                if p.startswith("lower_") and p[6:] not in ports:
                    (nd / p).unlink()
            for p in ports:
                pdir = _netdir(root, st, p, nets[p][0])
                tree.link(brif / p, pdir / "brport")
                tree.link(nd / f"lower_{p}", pdir)
        tree.link(cls / name, nd)
