"""Rendering the tree from the state: PCI devices and their attributes, drivers, IOMMU
groups, /dev/vfio, modules and the few /proc and /etc files vfctl reads. Reconciles: creates,
updates, and removes what is stale."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vfctl.sim import drivers, render_net, sriov, tree
from vfctl.sim.common import BUS_DEVICES, BUS_DRIVERS, DEVICES, IOMMU_GROUPS, Dev, State

BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def render(root: Path, st: State) -> None:
    """Reconcile the tree with the state: create, update, and remove what is stale."""
    devs: dict[str, Dev] = st["devices"]
    bus = root / BUS_DEVICES
    bus.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(bus):
        if name not in devs or not (bus / name).exists():
            target = Path(os.path.realpath(bus / name))
            if name not in devs and (root / DEVICES) in target.parents:
                tree.rm(target)
            tree.rm(bus / name)
    children: dict[str, list[tuple[int, str]]] = {}
    for d in devs.values():
        if d.get("physfn"):
            children.setdefault(d["physfn"], []).append((d["vf_index"], d["path"]))
    for bdf in sorted(devs, key=lambda b: devs[b]["path"].count("/")):
        d = devs[bdf]
        pf = d.get("physfn")
        payload = [d, children.get(bdf), pf and devs[pf]["path"], drivers.is_net(st, d["driver"])]
        if d.get("sriov"):
            payload.append(sriov.totalvfs(d))
        fp = tree.changed(st, f"dev:{bdf}", payload, root / DEVICES / d["path"] / "uevent")
        if fp is not None:
            _render_device(root, st, bdf)
            tree.link(bus / bdf, root / DEVICES / d["path"])
            st["_fp"][f"dev:{bdf}"] = fp
    render_net.render_net(root, st)
    _render_drivers(root, st)
    _render_groups(root, st)
    _render_misc(root, st)


def _hex(v: int, width: int) -> str:
    return f"0x{v:0{width}x}"


def _render_device(root: Path, st: State, bdf: str) -> None:
    import shutil

    from vfctl.sim import cfgbuild

    dev = st["devices"][bdf]
    d = root / DEVICES / dev["path"]
    d.mkdir(parents=True, exist_ok=True)
    pf = dev.get("physfn")
    cfg = d / "config"
    if not cfg.exists() and pf is not None:
        pf_cfg = (root / DEVICES / st["devices"][pf]["path"] / "config").read_bytes()
        tree.atomic_write(cfg, cfgbuild.vf_function(pf_cfg))
    cls = int(dev["class"])
    ven, did = dev["vendor"], dev["device"]
    sv, sd = dev["subsystem_vendor"], dev["subsystem_device"]
    drv = dev["driver"]
    modalias = (
        f"pci:v0000{ven.upper()}d0000{did.upper()}sv0000{sv.upper()}sd0000{sd.upper()}"
        f"bc{cls >> 16:02X}sc{(cls >> 8) & 0xFF:02X}i{cls & 0xFF:02X}"
    )
    attrs = {
        "vendor": f"0x{ven}",
        "device": f"0x{did}",
        "subsystem_vendor": f"0x{sv}",
        "subsystem_device": f"0x{sd}",
        "class": _hex(cls, 6),
        "revision": _hex(int(dev["revision"]), 2),
        "irq": str(dev["irq"]),
        "numa_node": str(dev["numa_node"]),
        "local_cpulist": dev["local_cpulist"],
        "enable": "1" if drv else "0",
        "driver_override": dev["driver_override"] or "(null)",
        "modalias": modalias,
        "resource": "".join(f"0x{a:016x} 0x{b:016x} 0x{c:016x}\n" for a, b, c in dev["resources"]),
        "uevent": (f"DRIVER={drv}\n" if drv else "")
        + f"PCI_CLASS={cls:X}\nPCI_ID={ven.upper()}:{did.upper()}\n"
        + f"PCI_SUBSYS_ID={sv.upper()}:{sd.upper()}\nPCI_SLOT_NAME={bdf}\nMODALIAS={modalias}",
    }
    sr = dev.get("sriov")
    if sr is not None:
        attrs.update(
            sriov_totalvfs=str(sriov.totalvfs(dev)),
            sriov_numvfs=str(sr["num"]),
            sriov_offset=str(sr["offset"]),
            sriov_stride=str(sr["stride"]),
            sriov_vf_device=sr["vf_device"],
            sriov_drivers_autoprobe=str(sr["autoprobe"]),
        )
        if sr.get("vf_total_msix") is not None:
            attrs["sriov_vf_total_msix"] = str(sr["vf_total_msix"])
    for k, v in attrs.items():
        tree.put(d / k, v if k == "resource" else v + "\n")
    tree.link(d / "subsystem", root / "sys/bus/pci")
    if drv:
        tree.link(d / "driver", root / BUS_DRIVERS / drv)
    elif d.joinpath("driver").is_symlink():
        (d / "driver").unlink()
    if dev["iommu_group"] is not None:
        tree.link(d / "iommu_group", root / IOMMU_GROUPS / str(dev["iommu_group"]))
    elif d.joinpath("iommu_group").is_symlink():
        (d / "iommu_group").unlink()
    if pf is not None:
        tree.link(d / "physfn", root / DEVICES / st["devices"][pf]["path"])
    want = {
        f"virtfn{v['vf_index']}": v["path"]
        for v in st["devices"].values()
        if v.get("physfn") == bdf
    }
    for name in os.listdir(d):
        if name.startswith("virtfn") and name not in want:
            (d / name).unlink()
    for name, path in want.items():
        tree.link(d / name, root / DEVICES / path)
    net = dev.get("net")
    keep = net["ifname"] if net and drivers.is_net(st, drv) else None
    if (d / "net").is_dir():
        for name in os.listdir(d / "net"):
            if name != keep:
                shutil.rmtree(d / "net" / name)
        if keep is None:
            (d / "net").rmdir()


def _render_drivers(root: Path, st: State) -> None:
    base = root / BUS_DRIVERS
    base.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(base):
        if name not in st["drivers"]:
            tree.rm(base / name)
    bound: dict[str, list[str]] = {}
    for bdf, dev in st["devices"].items():
        if dev["driver"]:
            bound.setdefault(dev["driver"], []).append(bdf)
    for drv in st["drivers"]:
        dd = base / drv
        dd.mkdir(exist_ok=True)
        for f in ("bind", "unbind", "new_id", "remove_id", "uevent"):
            if not (dd / f).exists():
                (dd / f).write_bytes(b"")
        mod = drivers.driver_spec(st, drv).get("module")
        if mod:
            tree.link(dd / "module", root / "sys/module" / mod)
        want = set(bound.get(drv, []))
        for name in os.listdir(dd):
            if BDF.fullmatch(name) and name not in want:
                (dd / name).unlink()
        for bdf in want:
            tree.link(dd / bdf, root / DEVICES / st["devices"][bdf]["path"])


def _render_groups(root: Path, st: State) -> None:
    base = root / IOMMU_GROUPS
    base.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for bdf, dev in st["devices"].items():
        if dev["iommu_group"] is not None:
            groups.setdefault(str(dev["iommu_group"]), []).append(bdf)
    for name in os.listdir(base):
        if name not in groups:
            tree.rm(base / name)
    vfio = root / "dev/vfio"
    vfio.mkdir(parents=True, exist_ok=True)
    want_vfio = set()
    if "vfio_pci" in st["modules"]:
        want_vfio.add("vfio")
    for g, members in groups.items():
        vfio_bound = any(st["devices"][b]["driver"] == "vfio-pci" for b in members)
        if vfio_bound:
            want_vfio.add(g)
        payload = [sorted((b, st["devices"][b]["path"]) for b in members), st.get("iommu_type")]
        fp = tree.changed(st, f"group:{g}", payload, base / g / "type")
        if fp is None:
            continue
        st["_fp"][f"group:{g}"] = fp
        gd = base / g / "devices"
        gd.mkdir(parents=True, exist_ok=True)
        tree.put(base / g / "type", st.get("iommu_type", "DMA") + "\n")
        tree.put(base / g / "reserved_regions", "")
        for name in os.listdir(gd):
            if name not in members:
                (gd / name).unlink()
        for bdf in members:
            tree.link(gd / bdf, root / DEVICES / st["devices"][bdf]["path"])
    for name in os.listdir(vfio):
        if name not in want_vfio:
            tree.rm(vfio / name)
    for name in want_vfio:
        if not (vfio / name).exists():
            (vfio / name).write_bytes(b"")


def _render_misc(root: Path, st: State) -> None:
    mods = root / "sys/module"
    mods.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(mods):
        if name not in st["modules"]:
            tree.rm(mods / name)
    for m in st["modules"]:
        (mods / m).mkdir(exist_ok=True)
        tree.put(mods / m / "initstate", "live\n")
        tree.put(mods / m / "refcnt", "0\n")
    pci = root / "sys/bus/pci"
    for f in ("drivers_probe", "rescan"):
        if not (pci / f).exists():
            (pci / f).write_bytes(b"")
    tree.put(pci / "drivers_autoprobe", "1\n")
    (root / "proc").mkdir(exist_ok=True)
    tree.put(root / "proc/cmdline", st["cmdline"] + "\n")
    (root / "etc").mkdir(exist_ok=True)
    tree.put(root / "etc/hostname", st["hostname"] + "\n")
