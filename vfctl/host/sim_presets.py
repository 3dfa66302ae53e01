"""Simulated hosts the simulator can start from, and the drivers it knows.

A preset is plain data: the initial ``state.json`` of the simulator plus each device's config
bytes (built from the register layout by :mod:`vfctl.host.cfgbuild`). Layouts follow the real
parts: the 82576's capability offsets are those of the real dump in the conformance corpus;
SR-IOV numbers are what the lab's kernel reported (TotalVFs 8 in the capability, 7 from igb).
"""

from __future__ import annotations

from typing import Any

from vfctl.host.cfgbuild import Bar, Function, build
from vfctl.host.sim_drivers import DRIVERS, PRESETS
from vfctl.pci import regs as R

__all__ = ["DRIVERS", "PRESETS", "make"]

State = dict[str, Any]

# Link speed codes of the PCIe Link Capabilities register
GT2_5, GT5, GT8 = 1, 2, 3


def _host_bridge(vendor: int, device: int) -> Function:
    return Function(vendor=vendor, device=device, class_code=0x060000, irq_pin=0)


def _root_port(device: int, vendor: int, buses: tuple[int, int, int], port: int) -> Function:
    return Function(
        vendor=vendor,
        device=device,
        class_code=0x060400,
        header_type=1,
        buses=buses,
        caps=[
            (
                0x40,
                "pcie",
                {
                    "type": R.PCI_EXP_TYPE_ROOT_PORT,
                    "speed": GT8,
                    "width": 8,
                    "port": port,
                    "slot": port,
                },
            ),
            (0x80, "msi", {}),
            (0x90, "ssvid", {"vendor": vendor, "device": 0}),
            (0xA0, "pm", {}),
        ],
        ext_caps=[(0x100, "aer", {}), (0x140, "acs", {})],
    )


def _i82576(fn: int, bus: int, subsys: tuple[int, int], serial: int, mf: bool) -> Function:
    """The 82576 as in the real dump (caps 40/50/70/a0, ext 100/140/150/160), VF offset 128."""
    base = 0xE0800000 + 0x100000 * bus + 0x80000 * fn
    vf_base = 0xD2800000 + 0x100000 * bus + 0x40000 * fn
    return Function(
        vendor=0x8086,
        device=0x10C9,
        class_code=0x020000,
        revision=1,
        subsys_vendor=subsys[0],
        subsys_device=subsys[1],
        multifunction=mf,
        irq_pin=1 + fn,
        irq_line=11,
        bars=[
            Bar(0, 0x20000, base, "mem32"),
            Bar(1, 0x20000, base + 0x20000, "mem32"),
            Bar(2, 0x20, 0x1000 + 0x1000 * bus + 0x20 * fn, "io"),
            Bar(3, 0x4000, base + 0x40000, "mem32"),
        ],
        caps=[
            (0x40, "pm", {}),
            (0x50, "msi", {}),
            (0x70, "msix", {"vectors": 10, "bar": 3}),
            (0xA0, "pcie", {"mps": 2, "speed": GT2_5, "width": 4}),
        ],
        ext_caps=[
            (0x100, "aer", {}),
            (0x140, "dsn", {"serial": serial}),
            (0x150, "ari", {"next_fn": 1 if (mf and fn == 0) else 0}),
            (0x160, "sriov", {"total": 8, "offset": 128, "stride": 2, "vf_device": 0x10CA}),
        ],
        vf_bars=[Bar(0, 0x4000, vf_base, "mem64"), Bar(3, 0x4000, vf_base + 0x20000, "mem64")],
    )


def _i82599(fn: int, bus: int) -> Function:
    base = 0xF7C00000 + 0x100000 * fn
    vf_base = 0x38000000000 + 0x1000000 * fn
    return Function(
        vendor=0x8086,
        device=0x10FB,
        class_code=0x020000,
        revision=1,
        subsys_vendor=0x8086,
        subsys_device=0x7A11,
        multifunction=True,
        irq_pin=1 + fn,
        irq_line=16 + fn,
        bars=[
            Bar(0, 0x80000, base, "mem64"),
            Bar(2, 0x20, 0xE000 + 0x20 * fn, "io"),
            Bar(4, 0x4000, base + 0x80000, "mem64"),
        ],
        caps=[
            (0x40, "pm", {}),
            (0x50, "msi", {"mmc": 0}),
            (0x70, "msix", {"vectors": 64, "bar": 4}),
            (0xA0, "pcie", {"mps": 2, "speed": GT5, "width": 8}),
        ],
        ext_caps=[
            (0x100, "aer", {}),
            (0x140, "dsn", {"serial": 0x90E2BAFFFF3A5C40 + fn}),
            (0x150, "ari", {"next_fn": 1 if fn == 0 else 0}),
            (0x160, "sriov", {"total": 64, "offset": 128, "stride": 2, "vf_device": 0x10ED}),
        ],
        vf_bars=[
            Bar(0, 0x4000, vf_base, "mem64", prefetch=True),
            Bar(3, 0x4000, vf_base + 0x100000, "mem64", prefetch=True),
        ],
    )


def _i210(bus: int) -> Function:
    base = 0xF7800000
    return Function(
        vendor=0x8086,
        device=0x1533,
        class_code=0x020000,
        revision=3,
        subsys_vendor=0x15D9,
        subsys_device=0x1533,
        irq_line=18,
        bars=[
            Bar(0, 0x80000, base, "mem32"),
            Bar(2, 0x20, 0xD000, "io"),
            Bar(3, 0x4000, base + 0x80000, "mem32"),
        ],
        caps=[
            (0x40, "pm", {}),
            (0x50, "msi", {"mmc": 0}),
            (0x70, "msix", {"vectors": 5, "bar": 3}),
            (0xA0, "pcie", {"mps": 2, "speed": GT2_5, "width": 1}),
        ],
        ext_caps=[(0x100, "aer", {}), (0x140, "dsn", {"serial": 0x002590FFFF1E2A3B})],
    )


def _qemu_nvme(bus: int) -> Function:
    base = 0xFE800000 + 0x100000 * bus
    return Function(
        vendor=0x1B36,
        device=0x0010,
        class_code=0x010802,
        revision=2,
        subsys_vendor=0x1AF4,
        subsys_device=0x1100,
        irq_line=10,
        bars=[Bar(0, 0x4000, base, "mem64")],
        caps=[
            (0x40, "msix", {"vectors": 16, "bar": 0, "table_off": 0x2000}),
            (0x60, "pcie", {"mps": 0, "speed": GT2_5, "width": 1, "flr": 1}),
            (0x80, "pm", {}),
        ],
        ext_caps=[
            (0x100, "sriov", {"total": 4, "offset": 1, "stride": 1, "vf_device": 0x0010}),
        ],
        vf_bars=[Bar(0, 0x4000, base + 0x10000, "mem64")],
    )


def _resources(fn: Function) -> list[list[int]]:
    """The sysfs ``resource`` rows: 6 BARs, ROM, 6 IOV BARs (and 4 bridge windows)."""
    rows = [[0, 0, 0] for _ in range(17 if fn.header_type == 1 else 13)]
    for bar in fn.bars:
        rows[bar.index] = [bar.addr, bar.addr + bar.size - 1, bar.resource_flags()]
    total = next((p["total"] for _, k, p in fn.ext_caps if k == "sriov"), 0)
    for bar in fn.vf_bars:
        rows[7 + bar.index] = [bar.addr, bar.addr + bar.size * total - 1, bar.resource_flags()]
    return rows


class _Builder:
    def __init__(self, numa: int, cpus: str) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, bytes] = {}
        self.numa, self.cpus = numa, cpus
        self.group = 0
        self.ifindex = 2  # 1 is lo

    def add(
        self,
        bdf: str,
        parent: str,
        fn: Function,
        driver: str | None,
        *,
        group: int | None = None,
        irq: int = 0,
        net: dict[str, Any] | None = None,
    ) -> None:
        if group is None:
            group = self.group
            self.group += 1
        dev: dict[str, Any] = {
            "path": f"{parent}/{bdf}",
            "vendor": f"{fn.vendor:04x}",
            "device": f"{fn.device:04x}",
            "subsystem_vendor": f"{fn.subsys_vendor:04x}",
            "subsystem_device": f"{fn.subsys_device:04x}",
            "class": fn.class_code,
            "revision": fn.revision,
            "irq": irq,
            "numa_node": self.numa,
            "local_cpulist": self.cpus,
            "resources": _resources(fn),
            "driver": driver,
            "driver_override": None,
            "iommu_group": group,
            "net": None,
        }
        sriov = next((p for _, k, p in fn.ext_caps if k == "sriov"), None)
        if sriov is not None:
            dev["sriov"] = {
                "cap_total": sriov["total"],
                "driver_max": DRIVERS.get(driver or "", {}).get("max_vfs"),
                "num": 0,
                "offset": sriov["offset"],
                "stride": sriov["stride"],
                "vf_device": f"{sriov['vf_device']:04x}",
                "autoprobe": 1,
                "vf_bars": [[b.index, b.addr, b.size, b.resource_flags()] for b in fn.vf_bars],
                "vfs": [],
                "hidden": [],
            }
        if net is not None:
            dev["net"] = {"ifindex": self.ifindex, **net}
            self.ifindex += 1
        self.devices[bdf] = dev
        self.configs[bdf] = build(fn)


def _nic(name: str, mac: str, *, up: bool, speed: int, master: str | None = None) -> dict[str, Any]:
    return {
        "ifname": name,
        "mac": mac,
        "mtu": 1500,
        "up": up,
        "carrier": up,
        "speed": speed,
        "master": master,
    }


def _base_state(preset: str, hostname: str, cmdline: str) -> State:
    return {
        "version": 1,
        "preset": preset,
        "hostname": hostname,
        "cmdline": cmdline,
        "modules": [],
        "drivers": [],
        "devices": {},
        "vnet": {
            "lo": {
                "kind": "loopback",
                "ifindex": 1,
                "mac": "00:00:00:00:00:00",
                "mtu": 65536,
                "up": True,
            },
        },
        "addresses": {"lo": ["127.0.0.1/8"]},
        "routes": [],
        "pending": [],
        "fault_hits": {},
        "fault_fired": {},
    }


def _finish(state: State, b: _Builder, drivers: list[str]) -> State:
    state["devices"] = b.devices
    state["drivers"] = drivers
    state["modules"] = [m for d in drivers if (m := DRIVERS[d]["module"])]
    state["next_ifindex"] = b.ifindex
    return state


def _default() -> tuple[State, dict[str, bytes]]:
    b = _Builder(0, "0-15")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, _host_bridge(0x8086, 0x1918), None)
    rp1, rp2, rp3 = (f"{root}/0000:00:{s}" for s in ("01.0", "1c.0", "1c.4"))
    b.add("0000:00:01.0", root, _root_port(0x1901, 0x8086, (0, 1, 1), 1), "pcieport", irq=120)
    for fn in (0, 1):
        b.add(
            f"0000:01:00.{fn}",
            rp1,
            _i82599(fn, 1),
            "ixgbe",
            irq=16 + fn,
            net=_nic(f"enp1s0f{fn}", f"90:e2:ba:3a:5c:4{fn}", up=True, speed=10000),
        )
    b.add("0000:00:1c.0", root, _root_port(0xA110, 0x8086, (0, 2, 2), 5), "pcieport", irq=121)
    shared = b.group
    b.group += 1
    for fn in (0, 1):
        b.add(
            f"0000:02:00.{fn}",
            rp2,
            _i82576(fn, 2, (0x8086, 0xA03C), 0x001B21FFFF2B46E0 + fn, True),
            "igb",
            group=shared,
            irq=17 + fn,
            net=_nic(
                f"enp2s0f{fn}", f"00:1b:21:2b:46:e{fn}", up=fn == 0, speed=1000 if fn == 0 else -1
            ),
        )
    b.add("0000:00:1c.4", root, _root_port(0xA114, 0x8086, (0, 3, 3), 9), "pcieport", irq=122)
    b.add(
        "0000:03:00.0",
        rp3,
        _i210(3),
        "igb",
        irq=18,
        net=_nic("enp3s0", "00:25:90:1e:2a:3b", up=True, speed=1000, master="vmbr0"),
    )
    state = _base_state(
        "default",
        "pve1",
        "BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=/dev/mapper/pve-root ro quiet "
        "intel_iommu=on iommu=pt",
    )
    state["vnet"]["vmbr0"] = {
        "kind": "bridge",
        "ifindex": b.ifindex,
        "mac": "00:25:90:1e:2a:3b",
        "mtu": 1500,
        "up": True,
        "ports": ["enp3s0"],
    }
    b.ifindex += 1
    state["addresses"]["vmbr0"] = ["192.0.2.10/24"]
    state["routes"] = [{"dst": "default", "gateway": "192.0.2.1", "dev": "vmbr0"}]
    return _finish(state, b, ["pcieport", "igb", "ixgbe"]), b.configs


def _minimal() -> tuple[State, dict[str, bytes]]:
    b = _Builder(-1, "0-3")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, _host_bridge(0x8086, 0x29C0), None)
    b.add("0000:00:01.0", root, _root_port(0x000C, 0x1B36, (0, 1, 1), 1), "pcieport", irq=24)
    b.add(
        "0000:01:00.0",
        f"{root}/0000:00:01.0",
        _i82576(0, 1, (0x8086, 0xA03C), 0x001B21FFFF2B4700, False),
        "igb",
        irq=16,
        net=_nic("enp1s0", "00:1b:21:2b:47:00", up=True, speed=1000),
    )
    state = _base_state("minimal", "sim-minimal", "root=/dev/sda1 ro intel_iommu=on iommu=pt")
    return _finish(state, b, ["pcieport", "igb"]), b.configs


def _lab() -> tuple[State, dict[str, bytes]]:
    b = _Builder(-1, "0-1")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, _host_bridge(0x8086, 0x29C0), None)
    for slot, bus in ((3, 1), (4, 2), (5, 3)):
        b.add(
            f"0000:00:{slot:02x}.0",
            root,
            _root_port(0x000C, 0x1B36, (0, bus, bus), slot),
            "pcieport",
            irq=24 + bus,
        )
    b.add(
        "0000:01:00.0",
        f"{root}/0000:00:03.0",
        _i82576(0, 1, (0x8086, 0x0000), 0x525400FFFF123401, False),
        "igb",
        irq=22,
        net=_nic("eth0", "52:54:00:12:34:01", up=False, speed=-1),
    )
    b.add("0000:02:00.0", f"{root}/0000:00:04.0", _qemu_nvme(2), "nvme", irq=23)
    b.add(
        "0000:03:00.0",
        f"{root}/0000:00:05.0",
        _i82576(0, 3, (0x8086, 0x0000), 0x525400FFFF123402, False),
        "igb",
        irq=20,
        net=_nic("eth1", "52:54:00:12:34:02", up=False, speed=-1),
    )
    state = _base_state(
        "lab", "vfctl-lab", "console=ttyS0 panic=-1 quiet loglevel=4 intel_iommu=on iommu=pt"
    )
    return _finish(state, b, ["pcieport", "igb", "nvme"]), b.configs


def make(preset: str) -> tuple[State, dict[str, bytes]]:
    """Initial simulator state and config bytes (by PCI address) of a preset."""
    builders = {"default": _default, "minimal": _minimal, "lab": _lab}
    if preset not in builders:
        raise KeyError(preset)
    return builders[preset]()
