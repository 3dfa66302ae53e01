"""Simulated hosts the simulator can start from (``vfctl sim init --preset``): the initial
``state.json`` of the simulator plus each device's config bytes (:mod:`vfctl.sim.parts`).
Building them loads the config-space builder, so only ``init`` imports this module."""

from __future__ import annotations

from vfctl.sim import parts
from vfctl.sim.catalog import DRIVERS
from vfctl.sim.common import State


def base_state(preset: str, hostname: str, cmdline: str) -> State:
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


def finish(state: State, b: parts.Builder, drivers: list[str]) -> State:
    state["devices"] = b.devices
    state["drivers"] = drivers
    state["modules"] = [m for d in drivers if (m := DRIVERS[d]["module"])]
    state["next_ifindex"] = b.ifindex
    return state


def _default() -> tuple[State, dict[str, bytes]]:
    b = parts.Builder(0, "0-15")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, parts.host_bridge(0x8086, 0x1918), None)
    rp1, rp2, rp3 = (f"{root}/0000:00:{s}" for s in ("01.0", "1c.0", "1c.4"))
    b.add("0000:00:01.0", root, parts.root_port(0x1901, 0x8086, (0, 1, 1), 1), "pcieport", irq=120)
    for fn in (0, 1):
        b.add(
            f"0000:01:00.{fn}",
            rp1,
            parts.i82599(fn, 1),
            "ixgbe",
            irq=16 + fn,
            net=parts.nic(f"enp1s0f{fn}", f"90:e2:ba:3a:5c:4{fn}", up=True, speed=10000),
        )
    b.add("0000:00:1c.0", root, parts.root_port(0xA110, 0x8086, (0, 2, 2), 5), "pcieport", irq=121)
    shared = b.group
    b.group += 1
    for fn in (0, 1):
        b.add(
            f"0000:02:00.{fn}",
            rp2,
            parts.i82576(fn, 2, (0x8086, 0xA03C), 0x001B21FFFF2B46E0 + fn, True),
            "igb",
            group=shared,
            irq=17 + fn,
            net=parts.nic(
                f"enp2s0f{fn}", f"00:1b:21:2b:46:e{fn}", up=fn == 0, speed=1000 if fn == 0 else -1
            ),
        )
    b.add("0000:00:1c.4", root, parts.root_port(0xA114, 0x8086, (0, 3, 3), 9), "pcieport", irq=122)
    b.add(
        "0000:03:00.0",
        rp3,
        parts.i210(3),
        "igb",
        irq=18,
        net=parts.nic("enp3s0", "00:25:90:1e:2a:3b", up=True, speed=1000, master="vmbr0"),
    )
    state = base_state(
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
    return finish(state, b, ["pcieport", "igb", "ixgbe"]), b.configs


def _minimal() -> tuple[State, dict[str, bytes]]:
    b = parts.Builder(-1, "0-3")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, parts.host_bridge(0x8086, 0x29C0), None)
    b.add("0000:00:01.0", root, parts.root_port(0x000C, 0x1B36, (0, 1, 1), 1), "pcieport", irq=24)
    b.add(
        "0000:01:00.0",
        f"{root}/0000:00:01.0",
        parts.i82576(0, 1, (0x8086, 0xA03C), 0x001B21FFFF2B4700, False),
        "igb",
        irq=16,
        net=parts.nic("enp1s0", "00:1b:21:2b:47:00", up=True, speed=1000),
    )
    state = base_state("minimal", "sim-minimal", "root=/dev/sda1 ro intel_iommu=on iommu=pt")
    return finish(state, b, ["pcieport", "igb"]), b.configs


def _lab() -> tuple[State, dict[str, bytes]]:
    b = parts.Builder(-1, "0-1")
    root = "pci0000:00"
    b.add("0000:00:00.0", root, parts.host_bridge(0x8086, 0x29C0), None)
    for slot, bus in ((3, 1), (4, 2), (5, 3)):
        b.add(
            f"0000:00:{slot:02x}.0",
            root,
            parts.root_port(0x000C, 0x1B36, (0, bus, bus), slot),
            "pcieport",
            irq=24 + bus,
        )
    b.add(
        "0000:01:00.0",
        f"{root}/0000:00:03.0",
        parts.i82576(0, 1, (0x8086, 0x0000), 0x525400FFFF123401, False),
        "igb",
        irq=22,
        net=parts.nic("eth0", "52:54:00:12:34:01", up=False, speed=-1),
    )
    b.add("0000:02:00.0", f"{root}/0000:00:04.0", parts.qemu_nvme(2), "nvme", irq=23)
    b.add(
        "0000:03:00.0",
        f"{root}/0000:00:05.0",
        parts.i82576(0, 3, (0x8086, 0x0000), 0x525400FFFF123402, False),
        "igb",
        irq=20,
        net=parts.nic("eth1", "52:54:00:12:34:02", up=False, speed=-1),
    )
    state = base_state(
        "lab", "vfctl-lab", "console=ttyS0 panic=-1 quiet loglevel=4 intel_iommu=on iommu=pt"
    )
    return finish(state, b, ["pcieport", "igb", "nvme"]), b.configs


def make(preset: str) -> tuple[State, dict[str, bytes]]:
    """Initial simulator state and config bytes (by PCI address) of a preset."""
    builders = {"default": _default, "minimal": _minimal, "lab": _lab}
    if preset not in builders:
        raise KeyError(preset)
    return builders[preset]()
