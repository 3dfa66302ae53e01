"""The PCI driver model: which drivers exist, how they match a device, probe and bind.

Follows drivers/pci/pci-driver.c (pci_match_device, pci_device_can_probe) and
drivers/base/dd.c (device_attach, driver_attach). VF drivers whose module is not loaded are
loaded on VF creation (as udev does by modalias).
"""

from __future__ import annotations

from vfctl.sim.catalog import DRIVERS
from vfctl.sim.common import Dev, State

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def driver_spec(st: State, driver: str) -> dict[str, Any]:
    spec = st.get("driver_specs", {}).get(driver) or DRIVERS.get(driver)
    return dict(spec) if spec else {"module": None, "ids": []}


def vendor_device(dev: Dev) -> str:
    return f"{dev['vendor']}:{dev['device']}"


def matches(st: State, driver: str, dev: Dev) -> bool:
    """pci_match_device(): driver_override first, then dynamic ids, static ids, class."""
    ov = dev.get("driver_override")
    if ov is not None and ov != driver:
        return False
    if vendor_device(dev) in st.get("dynids", {}).get(driver, []):
        return True
    spec = driver_spec(st, driver)
    if not spec.get("override_only") and (
        vendor_device(dev) in spec.get("ids", []) or dev["class"] in spec.get("classes", [])
    ):
        return True
    return ov == driver


def can_probe(st: State, dev: Dev) -> bool:
    """pci_device_can_probe(): a VF probes only with its PF's autoprobe on or an override."""
    pf = dev.get("physfn")
    if pf is None or dev.get("driver_override") is not None:
        return True
    return bool(st["devices"][pf]["sriov"]["autoprobe"])


def is_net(st: State, driver: str | None) -> bool:
    return bool(driver) and bool(driver_spec(st, driver or "").get("net"))


def attach(st: State, bdf: str, driver: str) -> None:
    dev = st["devices"][bdf]
    dev["driver"] = driver
    if dev.get("net") and is_net(st, driver):
        dev["net"]["ifindex"] = st["next_ifindex"]
        st["next_ifindex"] += 1
    sr = dev.get("sriov")
    if sr is not None:
        sr["driver_max"] = driver_spec(st, driver).get("max_vfs")


def probe(st: State, bdf: str, *, autoload: bool = False) -> bool:
    """device_attach(): the first loaded driver that matches binds (bus registration order)."""
    dev = st["devices"][bdf]
    if dev["driver"] is not None or not can_probe(st, dev):
        return False
    for drv in st["drivers"]:
        if matches(st, drv, dev):
            attach(st, bdf, drv)
            return True
    if autoload:
        for drv, spec in DRIVERS.items():
            if spec.get("module") and not spec.get("override_only") and matches(st, drv, dev):
                load_driver(st, drv)
                attach(st, bdf, drv)
                return True
    return False


def load_driver(st: State, driver: str) -> None:
    spec = driver_spec(st, driver)
    for m in [*spec.get("deps", []), spec.get("module")]:
        if m and m not in st["modules"]:
            st["modules"].append(m)
    if driver not in st["drivers"]:
        st["drivers"].append(driver)


def driver_attach(st: State, driver: str) -> list[str]:
    """driver_attach(): bind every unbound device this driver matches, in bus order."""
    bound = []
    for bdf in sorted(st["devices"]):
        dev = st["devices"][bdf]
        if dev["driver"] is None and matches(st, driver, dev) and can_probe(st, dev):
            bound.append(bdf)
    return bound


def settle_pending(st: State) -> None:
    pending = st.get("pending", [])
    st["pending"] = []
    for item in pending:
        bdf, drv = item["bdf"], item.get("driver")
        dev = st["devices"].get(bdf)
        if dev is None or dev["driver"] is not None:
            continue
        if drv is None:
            probe(st, bdf, autoload=bool(item.get("autoload")))
        elif drv in st["drivers"] and matches(st, drv, dev):
            attach(st, bdf, drv)


def module_driver(module: str) -> str | None:
    norm = module.replace("-", "_")
    for drv, spec in DRIVERS.items():
        if drv.replace("-", "_") == norm or spec.get("module") == norm:
            return drv
    return None
