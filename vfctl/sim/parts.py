"""The PCI parts simulated hosts are built of: each device's config space (from the register
layout, :mod:`vfctl.sim.cfgbuild`) and its sysfs record. Layouts follow the real parts: the
82576's capability offsets are those of the real dump in the conformance corpus; SR-IOV
numbers are what the lab's kernel reported (TotalVFs 8 in the capability, 7 from igb)."""

from __future__ import annotations

from typing import Any

from vfctl.pci import regs as R
from vfctl.sim.catalog import DRIVERS
from vfctl.sim.cfgbuild import Bar, Function, build

# Link speed codes of the PCIe Link Capabilities register
GT2_5, GT5, GT8 = 1, 2, 3


def host_bridge(vendor: int, device: int) -> Function:
    return Function(vendor=vendor, device=device, class_code=0x060000, irq_pin=0)


def root_port(device: int, vendor: int, buses: tuple[int, int, int], port: int) -> Function:
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


def i82576(fn: int, bus: int, subsys: tuple[int, int], serial: int, mf: bool) -> Function:
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


def i82599(fn: int, bus: int) -> Function:
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


def i210(bus: int) -> Function:
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


def qemu_nvme(bus: int) -> Function:
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


class Builder:
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


def nic(name: str, mac: str, *, up: bool, speed: int, master: str | None = None) -> dict[str, Any]:
    return {
        "ifname": name,
        "mac": mac,
        "mtu": 1500,
        "up": up,
        "carrier": up,
        "speed": speed,
        "master": master,
    }
