"""``vfctl sim snapshot``: record a host's PCI/SR-IOV state, read through the sysfs layout,
as a simulated host that goes on from there."""

from __future__ import annotations

import os
from pathlib import Path

from vfctl.errors import NotFoundError
from vfctl.sim import create, drivers, netdevs
from vfctl.sim.catalog import DRIVERS
from vfctl.sim.common import BUS_DEVICES, BUS_DRIVERS, DEVICES, VF_DEFAULTS, Dev, State, simdir
from vfctl.sim.render import BDF

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def _read(p: Path) -> str | None:
    """A source attribute: a regular file, opened O_NONBLOCK (a FIFO must not block a snapshot)."""
    from vfctl.host.files import read_attr

    try:
        return read_attr(str(p)).decode("utf-8", "replace").strip()
    except OSError:
        return None


def _read_int(p: Path, base: int = 10, default: int = 0) -> int:
    v = _read(p)
    try:
        return int(v, base) if v is not None else default
    except ValueError:
        return default


def snapshot(src_root: Path, dest: Path) -> None:
    """Record a host's PCI/SR-IOV state (read through the sysfs layout) as a simulated host."""
    src_root, dest = Path(src_root), Path(dest)
    if not src_root.is_dir():  # as discovery: a missing root is not found, not an empty host
        raise NotFoundError(f"host root {src_root} does not exist")
    st, configs = _snapshot_state(src_root)
    create.prepare(dest)
    create.materialize(dest, st, configs)


def _snapshot_state(src: Path) -> tuple[State, dict[str, bytes]]:
    sysdev = Path(os.path.realpath(src / DEVICES))
    bus = src / BUS_DEVICES
    devices: dict[str, Dev] = {}
    configs: dict[str, bytes] = {}
    bdfs = sorted(n for n in (os.listdir(bus) if bus.is_dir() else []) if BDF.fullmatch(n))
    for bdf in bdfs:
        d = Path(os.path.realpath(bus / bdf))
        try:
            path = str(d.relative_to(sysdev))
        except ValueError:
            continue
        try:
            from vfctl.host.files import read_attr

            configs[bdf] = read_attr(str(d / "config"), 4096)
        except OSError:
            configs[bdf] = b""
        rows = []
        for line in (_read(d / "resource") or "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append([int(x, 16) for x in parts])
        group = (
            os.path.basename(os.readlink(d / "iommu_group"))
            if (d / "iommu_group").is_symlink()
            else None
        )
        ov = _read(d / "driver_override")
        drv = os.path.basename(os.readlink(d / "driver")) if (d / "driver").is_symlink() else None
        dev: Dev = {
            "path": path,
            "vendor": (_read(d / "vendor") or "0xffff")[2:],
            "device": (_read(d / "device") or "0xffff")[2:],
            "subsystem_vendor": (_read(d / "subsystem_vendor") or "0x0000")[2:],
            "subsystem_device": (_read(d / "subsystem_device") or "0x0000")[2:],
            "class": _read_int(d / "class", 16),
            "revision": _read_int(d / "revision", 16),
            "irq": _read_int(d / "irq"),
            "numa_node": _read_int(d / "numa_node", default=-1),
            "local_cpulist": _read(d / "local_cpulist") or "",
            "resources": rows,
            "driver": drv,
            "driver_override": None if ov in (None, "(null)") else ov,
            "iommu_group": int(group) if group is not None and group.isdigit() else None,
            "net": None,
        }
        if (d / "sriov_totalvfs").exists():
            dev["sriov"] = _snapshot_sriov(d, configs[bdf], rows)
        if (d / "physfn").is_symlink():
            dev["physfn"] = os.path.basename(os.readlink(d / "physfn"))
        nets = sorted(os.listdir(d / "net")) if (d / "net").is_dir() else []
        if nets:
            dev["net"] = _snapshot_net(d / "net" / nets[0], nets[0])
        devices[bdf] = dev
    for bdf, dev in devices.items():
        pf = dev.get("physfn")
        if pf in devices:
            pdir = src / DEVICES / devices[pf]["path"]
            for name in os.listdir(pdir):
                if name.startswith("virtfn") and os.path.basename(os.readlink(pdir / name)) == bdf:
                    dev["vf_index"] = int(name[6:])
        elif pf is not None:
            dev.pop("physfn")
    st = _snapshot_host(src, devices)
    # a host without an IOMMU has no groups, and its VFs get none either
    st["iommu"] = any(d["iommu_group"] is not None for d in devices.values())
    return st, configs


def _snapshot_sriov(d: Path, cfg: bytes, rows: list[list[int]]) -> dict[str, Any]:
    from vfctl.sim import cfgbuild

    fields = cfgbuild.sriov_fields(cfg) if len(cfg) >= cfgbuild.CONFIG_SIZE else None
    kernel_total = _read_int(d / "sriov_totalvfs")
    cap_total = fields["total"] if fields else kernel_total
    vf_bars = []
    for i in range(6):
        if 7 + i < len(rows) and rows[7 + i][1] > rows[7 + i][0] and cap_total:
            start, end, flags = rows[7 + i]
            vf_bars.append([i, start, (end - start + 1) // cap_total, flags])
    num = _read_int(d / "sriov_numvfs")
    bound = (d / "driver").is_symlink()
    return {
        "cap_total": cap_total,
        "driver_max": kernel_total if bound and kernel_total != cap_total else None,
        "num": num,
        "offset": _read_int(d / "sriov_offset"),
        "stride": _read_int(d / "sriov_stride"),
        "vf_device": (_read(d / "sriov_vf_device") or "0").zfill(4),
        "autoprobe": _read_int(d / "sriov_drivers_autoprobe", default=1),
        "vf_bars": vf_bars,
        "vfs": [dict(VF_DEFAULTS) for _ in range(num)],
        "hidden": [],
    }


def _snapshot_net(nd: Path, name: str) -> dict[str, Any]:
    flags = _read_int(nd / "flags", 16)
    master = os.path.basename(os.readlink(nd / "master")) if (nd / "master").is_symlink() else None
    return {
        "ifname": name,
        "mac": _read(nd / "address") or "00:00:00:00:00:00",
        "mtu": _read_int(nd / "mtu", default=1500),
        "up": bool(flags & 1),
        "carrier": _read(nd / "carrier") == "1",
        "speed": _read_int(nd / "speed", default=-1),
        "master": master,
        "ifindex": _read_int(nd / "ifindex"),
    }


def _snapshot_host(src: Path, devices: dict[str, Dev]) -> State:
    drivers_dir = src / BUS_DRIVERS
    registered = sorted(os.listdir(drivers_dir)) if drivers_dir.is_dir() else []
    specs: dict[str, dict[str, Any]] = {}
    for drv in registered:
        if drv in DRIVERS:
            continue
        mod_link = drivers_dir / drv / "module"
        mod = os.path.basename(os.readlink(mod_link)) if mod_link.is_symlink() else None
        ids = sorted({drivers.vendor_device(d) for d in devices.values() if d["driver"] == drv})
        is_net = any(d["driver"] == drv and d["net"] for d in devices.values())
        specs[drv] = {"module": mod, "ids": ids, "net": is_net, "sriov": True}
    # drivers listed in bus order the way the kernel registered them is unknowable; known
    # drivers first keeps the simulator's matching deterministic
    order = [d for d in DRIVERS if d in registered] + [d for d in registered if d not in DRIVERS]
    modules = sorted(os.listdir(src / "sys/module")) if (src / "sys/module").is_dir() else []
    vnet: dict[str, Any] = {}
    cls = src / "sys/class/net"
    max_ifindex = max([d["net"]["ifindex"] for d in devices.values() if d["net"]] + [1])
    for name in sorted(os.listdir(cls)) if cls.is_dir() else []:
        nd = Path(os.path.realpath(cls / name))
        if "virtual" not in nd.parts:
            continue
        net = _snapshot_net(nd, name)
        kind = "bridge" if (nd / "bridge").is_dir() else "loopback" if name == "lo" else "virtual"
        net.pop("ifname")
        net.pop("speed")
        vnet[name] = {"kind": kind, **net}
        if kind == "bridge":
            vnet[name]["ports"] = sorted(os.listdir(nd / "brif")) if (nd / "brif").is_dir() else []
        max_ifindex = max(max_ifindex, net["ifindex"])
    st: State = {
        "version": 1,
        "preset": "snapshot",
        "hostname": _read(src / "etc/hostname") or "snapshot",
        "cmdline": _read(src / "proc/cmdline") or "",
        "modules": modules,
        "drivers": order,
        "driver_specs": specs,
        "devices": devices,
        "vnet": vnet,
        "addresses": {},
        "routes": [],
        "pending": [],
        "fault_hits": {},
        "fault_fired": {},
        "next_ifindex": max_ifindex + 1,
    }
    _snapshot_netlink(src, st)
    return st


def _snapshot_netlink(src: Path, st: State) -> None:
    """Addresses, routes and VF settings are not in sysfs: take them from the simulator's
    netlink model when the source is a simulated host (a real host's are left empty)."""
    if not simdir(src).is_dir():
        return
    nets = {d["net"]["ifname"]: d for d in st["devices"].values() if d.get("net")}
    for name in [*nets, *st["vnet"]]:
        try:
            info = netdevs.link_info(src, name)
        except OSError:
            continue
        if info["addresses"]:
            st["addresses"][name] = info["addresses"]
        st["routes"].extend(info["routes"])
        dev = nets.get(name)
        if dev is not None and dev.get("sriov"):
            vfs = netdevs.vf_info(src, name)
            dev["sriov"]["vfs"] = [{k: v for k, v in x.items() if k != "vf"} for x in vfs]
