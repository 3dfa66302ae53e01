"""The kernel's sysfs write rules: one handler per writable attribute the simulator models
(sriov_numvfs, sriov_drivers_autoprobe, driver_override, bind, unbind, drivers_probe,
new_id, remove_id), module loading, and late probes. Anything else fails as the kernel
would (EACCES for read-only files, EOPNOTSUPP for writable ones it does not model)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from vfctl.sim import drivers, faults, kparse, sriov, state
from vfctl.sim.common import DEVICES, Dev, State, oserr, simdir
from vfctl.sim.state import settle as settle  # the API names it here

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any

# Writable attributes the simulator does not model: the write fails loudly (EOPNOTSUPP)
# instead of pretending; every other existing non-modelled file is read-only (EACCES).
_WRITABLE_UNMODELLED = {
    "enable", "remove", "reset", "rescan", "config", "numa_node", "d3cold_allowed",
    "broken_parity_status", "msi_bus", "reset_method", "uevent", "mtu", "flags",
    "tx_queue_len", "ifalias", "carrier", "group", "proto_down", "sriov_vf_msix_count",
    "drivers_autoprobe",
}  # fmt: skip


def _norm_rel(rel: str) -> str:
    parts = [p for p in rel.split("/") if p]
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise oserr(errno.EACCES, f"{rel!r} escapes the host root")
    return "/".join(parts)


def _resolve(root: Path, rel: str) -> str:
    """The root-relative real path of a write target; ENOENT/EISDIR as open(O_WRONLY) gives."""
    p = root / rel
    real = Path(os.path.realpath(p))
    try:
        resolved = str(real.relative_to(os.path.realpath(root)))
    except ValueError:
        raise oserr(errno.ENOENT, rel) from None
    if real.is_dir():
        raise oserr(errno.EISDIR, rel)
    if not real.exists():
        raise oserr(errno.ENOENT, rel)
    return resolved


def write(root: Path, rel: str, value: str) -> None:
    """Apply one sysfs write with the kernel's rules; raises OSError as the kernel would."""
    root = Path(root)
    rel = _norm_rel(rel)
    result = "ok"
    try:
        with state.locked(root) as st:
            resolved = _resolve(root, rel)
            fault = faults.fault_for(root, st, [rel, resolved], value)
            _dispatch(root, st, resolved, value, fault)
    except OSError as e:
        result = errno.errorcode.get(e.errno or 0, str(e.errno))
        raise
    finally:
        if simdir(root).is_dir():
            state.log(root, rel, value, result)


def _dispatch(
    root: Path, st: State, resolved: str, value: str, fault: dict[str, Any] | None
) -> None:
    parent, name = resolved.rsplit("/", 1) if "/" in resolved else ("", resolved)
    if resolved == "sys/bus/pci/drivers_probe":
        return _drivers_probe(st, value, fault)
    m = re.fullmatch(r"sys/bus/pci/drivers/([^/]+)/(bind|unbind|new_id|remove_id)", resolved)
    if m:
        drv, op = m.groups()
        if op == "bind":
            return _bind(st, drv, value, fault)
        if op == "unbind":
            return _unbind(st, drv, value, fault)
        if op == "new_id":
            return _new_id(st, drv, value, fault)
        return _remove_id(st, drv, value, fault)
    by_path = {d["path"]: b for b, d in st["devices"].items()}
    if parent.startswith(DEVICES + "/") and parent[len(DEVICES) + 1 :] in by_path:
        bdf = by_path[parent[len(DEVICES) + 1 :]]
        dev = st["devices"][bdf]
        if name == "sriov_numvfs" and dev.get("sriov"):
            return _numvfs(root, st, bdf, value, fault)
        if name == "sriov_drivers_autoprobe" and dev.get("sriov"):
            flag = kparse.kstrtobool(value)
            faults.fail_if(fault, resolved)
            dev["sriov"]["autoprobe"] = int(flag)
            return None
        if name == "driver_override":
            return _driver_override(dev, value, fault, resolved)
    if name in _WRITABLE_UNMODELLED or not resolved.startswith("sys/"):
        raise oserr(errno.EOPNOTSUPP, f"{resolved}: not modelled by the simulator")
    raise oserr(errno.EACCES, f"{resolved} is read-only")


def _numvfs(root: Path, st: State, bdf: str, value: str, fault: dict[str, Any] | None) -> None:
    """sriov_numvfs_store() in drivers/pci/iov.c, check for check."""
    dev = st["devices"][bdf]
    sr = dev["sriov"]
    n = kparse.kstrtou16(value)
    if n > sriov.totalvfs(dev):
        raise oserr(
            errno.ERANGE, f"{bdf}: {n} VFs requested, sriov_totalvfs is {sriov.totalvfs(dev)}"
        )
    if n == sr["num"]:
        return
    if dev["driver"] is None or not drivers.driver_spec(st, dev["driver"]).get("sriov"):
        raise oserr(errno.ENOENT, f"{bdf}: no driver bound to device; cannot configure SR-IOV")
    if n == 0:
        faults.fail_if(fault, f"{bdf}: disabling SR-IOV")
        sriov.disable(st, bdf)
        return
    if sr["num"]:
        raise oserr(errno.EBUSY, f"{bdf}: {sr['num']} VFs already enabled; disable first")
    faults.fail_if(fault, f"{bdf}: enabling {n} VFs")
    sriov.enable(root, st, bdf, n, fault)


def _driver_override(dev: Dev, value: str, fault: dict[str, Any] | None, what: str) -> None:
    """driver_set_override(): up to the first newline; empty clears; PAGE_SIZE-1 limit."""
    if len(value.encode()) >= 4095:
        raise oserr(errno.EINVAL, f"{what}: value too long")
    faults.fail_if(fault, what)
    new = value.split("\n", 1)[0]
    dev["driver_override"] = new or None


def _bus_device(st: State, value: str) -> tuple[str, Dev]:
    bdf = kparse.sysfs_streq(value)
    dev = st["devices"].get(bdf)
    if dev is None:
        raise oserr(errno.ENODEV, f"no PCI device {bdf!r}")
    return bdf, dev


def _loaded_driver(st: State, drv: str) -> None:
    if drv not in st["drivers"]:
        raise oserr(errno.ENOENT, f"driver {drv} is not loaded")


def _bind(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    _loaded_driver(st, drv)
    bdf, dev = _bus_device(st, value)
    if not drivers.matches(st, drv, dev):
        raise oserr(errno.ENODEV, f"{drv} does not match {bdf}")
    if dev["driver"] is not None:
        raise oserr(errno.EBUSY, f"{bdf} is bound to {dev['driver']}")
    if not drivers.can_probe(st, dev):
        raise oserr(errno.ENODEV, f"{bdf}: VF probing disabled (sriov_drivers_autoprobe=0)")
    faults.fail_if(fault, f"binding {bdf} to {drv}")
    if faults.fault_mode(fault) == "late_bind":
        st.setdefault("pending", []).append({"bdf": bdf, "driver": drv})
        return
    drivers.attach(st, bdf, drv)


def _unbind(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    _loaded_driver(st, drv)
    bdf, dev = _bus_device(st, value)
    if dev["driver"] != drv:
        raise oserr(errno.ENODEV, f"{bdf} is not bound to {drv}")
    faults.fail_if(fault, f"unbinding {bdf} from {drv}")
    sriov.detach(st, bdf)


def _drivers_probe(st: State, value: str, fault: dict[str, Any] | None) -> None:
    bdf, dev = _bus_device(st, value)
    faults.fail_if(fault, f"probing {bdf}")
    if dev["driver"] is not None:
        return
    if faults.fault_mode(fault) == "late_bind":
        st.setdefault("pending", []).append({"bdf": bdf, "driver": None})
        return
    drivers.probe(st, bdf)


def _dynid(st: State, drv: str, attr: str, value: str) -> tuple[str, list[int]]:
    """``vendor:device`` and the fields of a write to ``new_id``/``remove_id``: both stores
    scan at least vendor and device or fail with EINVAL (drivers/pci/pci-driver.c)."""
    _loaded_driver(st, drv)
    fields = kparse.parse_id_fields(value)
    if len(fields) < 2:
        raise oserr(errno.EINVAL, f"{attr}: expected 'vendor device', got {value!r}")
    return f"{fields[0] & 0xFFFF:04x}:{fields[1] & 0xFFFF:04x}", fields


def _new_id(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    """new_id_store(): add a dynamic id, then bind every unbound device that now matches."""
    vd, fields = _dynid(st, drv, "new_id", value)
    if len(fields) != 7:
        probe_dev = {"vendor": vd[:4], "device": vd[5:], "class": -1, "driver_override": None}
        if drivers.matches(st, drv, probe_dev):
            raise oserr(errno.EEXIST, f"{drv} already handles {vd}")
    faults.fail_if(fault, f"new_id {vd} for {drv}")
    st.setdefault("dynids", {}).setdefault(drv, []).append(vd)
    for bdf in drivers.driver_attach(st, drv):
        if faults.fault_mode(fault) == "late_bind":
            st.setdefault("pending", []).append({"bdf": bdf, "driver": drv})
        else:
            drivers.attach(st, bdf, drv)


def _remove_id(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    vd, _ = _dynid(st, drv, "remove_id", value)
    ids = st.setdefault("dynids", {}).get(drv, [])
    if vd not in ids:
        raise oserr(errno.ENODEV, f"{drv} has no dynamic id {vd}")
    faults.fail_if(fault, f"remove_id {vd} for {drv}")
    ids.remove(vd)


def modprobe(root: Path, module: str) -> None:
    """Load a module: its driver registers and binds what it matches (driver_override too)."""
    root = Path(root)
    with state.locked(root) as st:
        drv = drivers.module_driver(module)
        if drv is None:
            raise oserr(errno.ENOENT, f"modprobe: FATAL: Module {module} not found")
        if drv in st["drivers"]:
            return
        drivers.load_driver(st, drv)
        for bdf in drivers.driver_attach(st, drv):
            drivers.attach(st, bdf, drv)


def module_known(root: Path, module: str) -> bool:
    """``modprobe --dry-run``: whether the simulator has that module (nothing is loaded)."""
    return drivers.module_driver(module) is not None
