"""The kernel simulator behind ``vfctl sim``: a host tree in the real sysfs layout whose writes
follow the kernel's SR-IOV, driver-binding and VFIO rules.

Why: vfctl must be testable (and demonstrable) without SR-IOV hardware, and every rule it
relies on must behave as the lab's real kernel did (shared/LAB.md). Reads need no simulator:
the tree on disk *is* the host, in the layout pciutils and vfctl read. Writes come here
(``vfctl.host.sysfs.Host.write`` dispatches to :func:`write` when ``ROOT/.vfctl-sim`` exists).

State lives in ``ROOT/.vfctl-sim/state.json`` (guarded by an flock on ``.vfctl-sim/lock``);
after each change the tree is reconciled with it. Config files on disk are authoritative for
config bytes (the simulator patches the PF's SR-IOV NumVFs/VF Enable/VF MSE; VF configs are
derived from the PF's).

``ROOT/.vfctl-sim/writes.log``: one line per write attempt (sysfs or netlink):
``<path as written>\\t<value, backslash-escaped>\\t<ok | ERRNO-NAME>``. Netlink settings are
logged with the path ``netlink/<pf-ifname>/vf<N>/<key>``.

``ROOT/.vfctl-sim/faults.json`` (optional): a JSON list of rules, each
``{"path": GLOB, "value": V?, "errno": "EIO", "after": N?, "times": K?, "mode": M?, ...}``.
GLOB is matched (fnmatch, case-sensitive) against the root-relative path as written and as
resolved through symlinks (or the netlink path above). ``value`` (optional) must equal the
written value without its trailing newline. The first ``after`` matching writes pass
(default 0); the rule then fires ``times`` times (default 1; ``null`` = always). Counters
persist in state.json, keyed by the rule's position and text. Modes:

- ``error`` (default): the write fails with ``errno`` (EBUSY, EIO, ENOMEM, ENODEV, ...) at the
  point the kernel would do the work (after input validation), and changes nothing, as the
  kernel rolls back a failed sriov_enable.
- ``partial`` (sriov_numvfs): the driver enables only ``create`` VFs (default N-1); the write
  succeeds, as the kernel only warns "N VFs requested; only M enabled".
- ``no_vf`` (sriov_numvfs): VF number ``vf`` (default the last) never appears as a PCI device:
  no directory, no ``virtfnN`` link, although numvfs reads N.
- ``late_bind`` (sriov_numvfs, drivers_probe, bind, new_id): the write succeeds but the
  resulting driver binds happen on the next simulator call (any write, modprobe, vf_info,
  set_vf, link_info, or :func:`settle`) — the next "probe".

Decisions where the kernel leaves room: VF netdevs are named ``<pf-ifname>v<N>`` (systemd's
SR-IOV naming); VF drivers whose module is not loaded are loaded on VF creation (as udev does
by modalias); a PF driver's remove disables SR-IOV (igb/ixgbe do); new IOMMU group numbers are
the lowest free (the kernel's ida); VFs each get their own group.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vfctl import vfattrs
from vfctl.errors import NotFoundError, UsageError
from vfctl.host.sim_drivers import DRIVERS, PRESETS
from vfctl.pci.address import vf_address

__all__ = [
    "PRESETS",
    "init",
    "link_info",
    "links",
    "modprobe",
    "module_known",
    "set_link",
    "set_vf",
    "settle",
    "snapshot",
    "vf_info",
    "vf_info_all",
    "write",
]

State = dict[str, Any]


Dev = dict[str, Any]

MARKER = ".vfctl-sim"
DEVICES = "sys/devices"
BUS_DEVICES = "sys/bus/pci/devices"
BUS_DRIVERS = "sys/bus/pci/drivers"
IOMMU_GROUPS = "sys/kernel/iommu_groups"
_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
# Writable attributes the simulator does not model: the write fails loudly (EOPNOTSUPP)
# instead of pretending; every other existing non-modelled file is read-only (EACCES).
_WRITABLE_UNMODELLED = {
    "enable", "remove", "reset", "rescan", "config", "numa_node", "d3cold_allowed",
    "broken_parity_status", "msi_bus", "reset_method", "uevent", "mtu", "flags",
    "tx_queue_len", "ifalias", "carrier", "group", "proto_down", "sriov_vf_msix_count",
    "drivers_autoprobe",
}  # fmt: skip
_VF_DEFAULTS: dict[str, Any] = dict(vfattrs.DEFAULTS)  # what the kernel gives a new VF


def _oserr(code: int, msg: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: {msg}")


# ---------------------------------------------------------------- state and locking


def _simdir(root: Path) -> Path:
    return root / MARKER


PENDING = "render-pending"  # write-ahead intent: the saved state is not fully on disk yet


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[State]:
    """Load state under an exclusive flock, yield it, then make it durable and render it.

    Crash safety (kill -9 anywhere): the intent marker is created before the new state is
    saved and removed only after the tree matches it, so whoever finds the marker re-renders
    the whole tree from the saved state (idempotent) before anything reads or changes it.
    """
    sd = _simdir(root)
    if not sd.is_dir():
        raise _oserr(errno.ENOENT, f"{root} is not a simulated host (no {MARKER}/)")
    fd = os.open(sd / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = (sd / "state.json").read_text()
        st: State = json.loads(text)
        if (sd / PENDING).exists():
            _commit(root, st, full=True)  # a killed writer: finish its render first
            text = ""
        try:
            _settle(st)
            yield st
        finally:
            if _dump(st) != text:  # reads (vf_info, link_info) change nothing: no commit
                _commit(root, st)
    finally:
        os.close(fd)


def _commit(root: Path, st: State, full: bool = False) -> None:
    """Intent marker, state, config patches and tree, in an order a kill cannot break."""
    sd = _simdir(root)
    if full:
        st["_fp"] = {}  # the tree may be half-rendered anywhere: compare every part
    (sd / PENDING).touch()
    _save(root, st)
    for bdf, num in st.get("config_patches", []):
        if bdf in st["devices"]:
            _patch_config(root, st["devices"][bdf], num)
    _render(root, st)
    st.pop("config_patches", None)
    _save(root, st)
    os.unlink(sd / PENDING)


def repair(root: Path) -> None:
    """Finish the render of a writer killed mid-way (a no-op when none was): readers call it."""
    sd = _simdir(Path(root))
    if not (sd / PENDING).exists():
        return
    with contextlib.suppress(OSError), _locked_raw(Path(root)) as st:
        if (sd / PENDING).exists():
            _commit(Path(root), st, full=True)


@contextlib.contextmanager
def _locked_raw(root: Path) -> Iterator[State]:
    """State under the flock, without settling pending binds or rendering on the way out."""
    sd = _simdir(root)
    fd = os.open(sd / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield json.loads((sd / "state.json").read_text())
    finally:
        os.close(fd)


def _dump(st: State) -> str:
    """state.json's text: compact and sorted, so the C encoder writes it (an indent needs the
    pure-Python one, ~15x slower) and every command can compare it with what it read."""
    return json.dumps(st, sort_keys=True)


def _save(root: Path, st: State) -> None:
    sd = _simdir(root)
    tmp = sd / f"state.json.{os.getpid()}"
    tmp.write_text(_dump(st))
    os.replace(tmp, sd / "state.json")


def _log(root: Path, path: str, value: str, result: str) -> None:
    shown = value.encode("unicode_escape").decode("ascii").replace("\t", "\\t")
    with open(_simdir(root) / "writes.log", "a", encoding="utf-8") as f:
        f.write(f"{path}\t{shown}\t{result}\n")


# ---------------------------------------------------------------- faults


def _faults(root: Path) -> list[dict[str, Any]]:
    p = _simdir(root) / "faults.json"
    if not p.exists():
        return []
    data = json.loads(p.read_text())
    if not isinstance(data, list):
        raise _oserr(errno.EINVAL, f"{p}: faults must be a JSON list")
    return [f for f in data if isinstance(f, dict)]


def _fault_for(root: Path, st: State, paths: list[str], value: str) -> dict[str, Any] | None:
    """The fault rule that fires for this write, counting matches as the format says."""
    import fnmatch

    hits: dict[str, int] = st.setdefault("fault_hits", {})
    fired: dict[str, int] = st.setdefault("fault_fired", {})
    chosen = None
    for i, rule in enumerate(_faults(root)):
        pat = str(rule.get("path", ""))
        if not any(fnmatch.fnmatchcase(p, pat) for p in paths):
            continue
        if "value" in rule and str(rule["value"]) != value.rstrip("\n"):
            continue
        key = f"{i}:{json.dumps(rule, sort_keys=True)}"  # a rewritten rule starts afresh
        hits[key] = hits.get(key, 0) + 1
        times = rule.get("times", 1)
        due = chosen is None and hits[key] > int(rule.get("after", 0))
        if due and (times is None or fired.get(key, 0) < int(times)):
            fired[key] = fired.get(key, 0) + 1
            chosen = rule
    return chosen


def _fail_if(fault: dict[str, Any] | None, what: str) -> None:
    if fault is not None and fault.get("mode", "error") == "error":
        name = str(fault.get("errno", "EIO"))
        code = getattr(errno, name, None)
        if not isinstance(code, int):
            raise _oserr(errno.EINVAL, f"faults.json: unknown errno {name!r}")
        raise _oserr(code, f"{what} (injected fault)")


def _mode(fault: dict[str, Any] | None) -> str | None:
    return None if fault is None else str(fault.get("mode", "error"))


# ---------------------------------------------------------------- kernel parsing helpers


def _kstrtoull(text: str) -> int:
    """The kernel's kstrtoull(s, 0): optional '+', 0x/0 prefixes, one trailing newline."""
    s = text[1:] if text.startswith("+") else text
    base = 10
    if s.startswith("0"):
        if len(s) > 2 and s[1] in "xX" and s[2] in "0123456789abcdefABCDEF":
            base, s = 16, s[2:]
        else:
            base = 8
    i, val = 0, 0
    overflow = False
    while i < len(s):
        c = s[i].lower()
        if c.isdigit() and c.isascii():
            d = ord(c) - 48
        elif "a" <= c <= "f":
            d = ord(c) - 87
        else:
            break
        if d >= base:
            break
        val = val * base + d
        overflow = overflow or val >= 1 << 64
        i += 1
    if overflow:
        raise _oserr(errno.ERANGE, f"{text!r} out of range")
    rest = s[i:]
    if rest.startswith("\n"):
        rest = rest[1:]
    if i == 0 or rest:
        raise _oserr(errno.EINVAL, f"invalid number {text!r}")
    return val


def _kstrtou16(text: str) -> int:
    v = _kstrtoull(text)
    if v > 0xFFFF:
        raise _oserr(errno.ERANGE, f"{text!r} out of range")
    return v


def _kstrtobool(text: str) -> bool:
    s = text
    if s[:1] in ("y", "Y", "t", "T", "1"):
        return True
    if s[:1] in ("n", "N", "f", "F", "0"):
        return False
    if s[:1] in ("o", "O") and s[1:2] in ("n", "N"):
        return True
    if s[:1] in ("o", "O") and s[1:2] in ("f", "F"):
        return False
    raise _oserr(errno.EINVAL, f"invalid boolean {text!r}")


def _sysfs_streq(value: str) -> str:
    """The name a bus lookup sees: sysfs_streq ignores one trailing newline."""
    return value[:-1] if value.endswith("\n") else value


# ---------------------------------------------------------------- driver model


def _spec(st: State, driver: str) -> dict[str, Any]:
    spec = st.get("driver_specs", {}).get(driver) or DRIVERS.get(driver)
    return dict(spec) if spec else {"module": None, "ids": []}


def _vd(dev: Dev) -> str:
    return f"{dev['vendor']}:{dev['device']}"


def _match(st: State, driver: str, dev: Dev) -> bool:
    """pci_match_device(): driver_override first, then dynamic ids, static ids, class."""
    ov = dev.get("driver_override")
    if ov is not None and ov != driver:
        return False
    if _vd(dev) in st.get("dynids", {}).get(driver, []):
        return True
    spec = _spec(st, driver)
    if not spec.get("override_only") and (
        _vd(dev) in spec.get("ids", []) or dev["class"] in spec.get("classes", [])
    ):
        return True
    return ov == driver


def _can_probe(st: State, dev: Dev) -> bool:
    """pci_device_can_probe(): a VF probes only with its PF's autoprobe on or an override."""
    pf = dev.get("physfn")
    if pf is None or dev.get("driver_override") is not None:
        return True
    return bool(st["devices"][pf]["sriov"]["autoprobe"])


def _is_net(st: State, driver: str | None) -> bool:
    return bool(driver) and bool(_spec(st, driver or "").get("net"))


def _attach(st: State, bdf: str, driver: str) -> None:
    dev = st["devices"][bdf]
    dev["driver"] = driver
    if dev.get("net") and _is_net(st, driver):
        dev["net"]["ifindex"] = st["next_ifindex"]
        st["next_ifindex"] += 1
    sr = dev.get("sriov")
    if sr is not None:
        sr["driver_max"] = _spec(st, driver).get("max_vfs")


def _detach(st: State, bdf: str) -> None:
    dev = st["devices"][bdf]
    sr = dev.get("sriov")
    if sr is not None:
        if sr["num"] and _spec(st, dev["driver"]).get("sriov"):
            _disable_sriov(st, bdf)
        sr["driver_max"] = None  # pci_iov_remove(): back to the capability's TotalVFs
    dev["driver"] = None


def _probe(st: State, bdf: str, *, autoload: bool = False) -> bool:
    """device_attach(): the first loaded driver that matches binds (bus registration order)."""
    dev = st["devices"][bdf]
    if dev["driver"] is not None or not _can_probe(st, dev):
        return False
    for drv in st["drivers"]:
        if _match(st, drv, dev):
            _attach(st, bdf, drv)
            return True
    if autoload:
        for drv, spec in DRIVERS.items():
            if spec.get("module") and not spec.get("override_only") and _match(st, drv, dev):
                _load(st, drv)
                _attach(st, bdf, drv)
                return True
    return False


def _load(st: State, driver: str) -> None:
    spec = _spec(st, driver)
    for m in [*spec.get("deps", []), spec.get("module")]:
        if m and m not in st["modules"]:
            st["modules"].append(m)
    if driver not in st["drivers"]:
        st["drivers"].append(driver)


def _driver_attach(st: State, driver: str) -> list[str]:
    """driver_attach(): bind every unbound device this driver matches, in bus order."""
    bound = []
    for bdf in sorted(st["devices"]):
        dev = st["devices"][bdf]
        if dev["driver"] is None and _match(st, driver, dev) and _can_probe(st, dev):
            bound.append(bdf)
    return bound


def _settle(st: State) -> None:
    pending = st.get("pending", [])
    st["pending"] = []
    for item in pending:
        bdf, drv = item["bdf"], item.get("driver")
        dev = st["devices"].get(bdf)
        if dev is None or dev["driver"] is not None:
            continue
        if drv is None:
            _probe(st, bdf, autoload=bool(item.get("autoload")))
        elif drv in st["drivers"] and _match(st, drv, dev):
            _attach(st, bdf, drv)


# ---------------------------------------------------------------- SR-IOV


def _totalvfs(dev: Dev) -> int:
    """pci_sriov_get_totalvfs(): the driver's limit when bound, else the capability's."""
    sr = dev["sriov"]
    return int(sr["driver_max"] if sr.get("driver_max") is not None else sr["cap_total"])


def _patch_config(root: Path, dev: Dev, num: int) -> None:
    """Idempotent (it sets NumVFs to ``num``), so a replay after a kill is harmless."""
    from vfctl.host import cfgbuild

    p = root / DEVICES / dev["path"] / "config"
    with contextlib.suppress(OSError):
        _atomic_write(p, cfgbuild.set_sriov_numvfs(p.read_bytes(), num))


def _atomic_write(p: Path, data: bytes) -> None:
    """Config bytes are never re-derived: a kill must leave the old or the new file, whole."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def _free_group(st: State) -> int:
    used = {d["iommu_group"] for d in st["devices"].values() if d.get("iommu_group") is not None}
    n = 0
    while n in used:
        n += 1
    return n


def _random_mac(seed: str) -> str:
    """A stable locally administered unicast MAC, as eth_random_addr() would give."""
    import hashlib

    h = hashlib.sha256(seed.encode()).digest()
    octets = [(h[0] & 0xFC) | 0x02, *h[1:6]]
    return ":".join(f"{o:02x}" for o in octets)


def _enable_sriov(root: Path, st: State, bdf: str, n: int, fault: dict[str, Any] | None) -> None:
    pf = st["devices"][bdf]
    sr = pf["sriov"]
    mode = _mode(fault)
    count = n
    if mode == "partial" and fault is not None:
        count = max(0, min(n, int(fault.get("create", n - 1))))
    missing = -1
    if mode == "no_vf" and fault is not None:
        missing = int(fault.get("vf", count - 1))
    sr["num"] = count
    sr["vfs"] = [dict(_VF_DEFAULTS) for _ in range(count)]
    st.setdefault("config_patches", []).append([bdf, count])
    parent = pf["path"].rsplit("/", 1)[0]
    pf_net = pf.get("net") if _is_net(st, pf["driver"]) else None
    for i in range(count):
        if i == missing:
            continue
        vbdf = vf_address(bdf, sr["offset"], sr["stride"], i)
        rows = [[0, 0, 0] for _ in range(13)]
        for index, start, size, flags in sr["vf_bars"]:
            rows[index] = [start + i * size, start + (i + 1) * size - 1, flags]
        vf: Dev = {
            "path": f"{parent}/{vbdf}",
            "vendor": pf["vendor"],
            "device": sr["vf_device"],
            "subsystem_vendor": pf["subsystem_vendor"],
            "subsystem_device": pf["subsystem_device"],
            "class": pf["class"],
            "revision": pf["revision"],
            "irq": 0,
            "numa_node": pf["numa_node"],
            "local_cpulist": pf["local_cpulist"],
            "resources": rows,
            "driver": None,
            "driver_override": None,
            "iommu_group": None,
            "physfn": bdf,
            "vf_index": i,
            "net": None,
        }
        if pf_net is not None:
            vf["net"] = {
                "ifname": f"{pf_net['ifname']}v{i}",
                "mac": _random_mac(f"{vbdf}/{st.get('next_ifindex')}"),
                "mtu": 1500,
                "up": False,
                "carrier": False,
                "speed": -1,
                "master": None,
                "ifindex": 0,
            }
        st["devices"][vbdf] = vf
        vf["iommu_group"] = _free_group(st) if st.get("iommu", True) else None
        if not sr["autoprobe"]:
            continue
        if mode == "late_bind":
            st.setdefault("pending", []).append({"bdf": vbdf, "driver": None, "autoload": True})
        else:
            _probe(st, vbdf, autoload=True)


def _disable_sriov(st: State, bdf: str) -> None:
    pf = st["devices"][bdf]
    for vbdf in [b for b, d in st["devices"].items() if d.get("physfn") == bdf]:
        del st["devices"][vbdf]
    st["pending"] = [p for p in st.get("pending", []) if p["bdf"] in st["devices"]]
    pf["sriov"]["num"] = 0
    pf["sriov"]["vfs"] = []
    st.setdefault("config_patches", []).append([bdf, 0])


# ---------------------------------------------------------------- write dispatch


def _norm_rel(rel: str) -> str:
    parts = [p for p in rel.split("/") if p]
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise _oserr(errno.EACCES, f"{rel!r} escapes the host root")
    return "/".join(parts)


def _resolve(root: Path, rel: str) -> str:
    """The root-relative real path of a write target; ENOENT/EISDIR as open(O_WRONLY) gives."""
    p = root / rel
    real = Path(os.path.realpath(p))
    try:
        resolved = str(real.relative_to(os.path.realpath(root)))
    except ValueError:
        raise _oserr(errno.ENOENT, rel) from None
    if real.is_dir():
        raise _oserr(errno.EISDIR, rel)
    if not real.exists():
        raise _oserr(errno.ENOENT, rel)
    return resolved


def write(root: Path, rel: str, value: str) -> None:
    """Apply one sysfs write with the kernel's rules; raises OSError as the kernel would."""
    root = Path(root)
    rel = _norm_rel(rel)
    result = "ok"
    try:
        with _locked(root) as st:
            resolved = _resolve(root, rel)
            fault = _fault_for(root, st, [rel, resolved], value)
            _dispatch(root, st, resolved, value, fault)
    except OSError as e:
        result = errno.errorcode.get(e.errno or 0, str(e.errno))
        raise
    finally:
        if _simdir(root).is_dir():
            _log(root, rel, value, result)


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
            flag = _kstrtobool(value)
            _fail_if(fault, resolved)
            dev["sriov"]["autoprobe"] = int(flag)
            return None
        if name == "driver_override":
            return _driver_override(dev, value, fault, resolved)
    if name in _WRITABLE_UNMODELLED or not resolved.startswith("sys/"):
        raise _oserr(errno.EOPNOTSUPP, f"{resolved}: not modelled by the simulator")
    raise _oserr(errno.EACCES, f"{resolved} is read-only")


def _numvfs(root: Path, st: State, bdf: str, value: str, fault: dict[str, Any] | None) -> None:
    """sriov_numvfs_store() in drivers/pci/iov.c, check for check."""
    dev = st["devices"][bdf]
    sr = dev["sriov"]
    n = _kstrtou16(value)
    if n > _totalvfs(dev):
        raise _oserr(errno.ERANGE, f"{bdf}: {n} VFs requested, sriov_totalvfs is {_totalvfs(dev)}")
    if n == sr["num"]:
        return
    if dev["driver"] is None or not _spec(st, dev["driver"]).get("sriov"):
        raise _oserr(errno.ENOENT, f"{bdf}: no driver bound to device; cannot configure SR-IOV")
    if n == 0:
        _fail_if(fault, f"{bdf}: disabling SR-IOV")
        _disable_sriov(st, bdf)
        return
    if sr["num"]:
        raise _oserr(errno.EBUSY, f"{bdf}: {sr['num']} VFs already enabled; disable first")
    _fail_if(fault, f"{bdf}: enabling {n} VFs")
    _enable_sriov(root, st, bdf, n, fault)


def _driver_override(dev: Dev, value: str, fault: dict[str, Any] | None, what: str) -> None:
    """driver_set_override(): up to the first newline; empty clears; PAGE_SIZE-1 limit."""
    if len(value.encode()) >= 4095:
        raise _oserr(errno.EINVAL, f"{what}: value too long")
    _fail_if(fault, what)
    new = value.split("\n", 1)[0]
    dev["driver_override"] = new or None


def _bus_device(st: State, value: str) -> tuple[str, Dev]:
    bdf = _sysfs_streq(value)
    dev = st["devices"].get(bdf)
    if dev is None:
        raise _oserr(errno.ENODEV, f"no PCI device {bdf!r}")
    return bdf, dev


def _loaded_driver(st: State, drv: str) -> None:
    if drv not in st["drivers"]:
        raise _oserr(errno.ENOENT, f"driver {drv} is not loaded")


def _bind(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    _loaded_driver(st, drv)
    bdf, dev = _bus_device(st, value)
    if not _match(st, drv, dev):
        raise _oserr(errno.ENODEV, f"{drv} does not match {bdf}")
    if dev["driver"] is not None:
        raise _oserr(errno.EBUSY, f"{bdf} is bound to {dev['driver']}")
    if not _can_probe(st, dev):
        raise _oserr(errno.ENODEV, f"{bdf}: VF probing disabled (sriov_drivers_autoprobe=0)")
    _fail_if(fault, f"binding {bdf} to {drv}")
    if _mode(fault) == "late_bind":
        st.setdefault("pending", []).append({"bdf": bdf, "driver": drv})
        return
    _attach(st, bdf, drv)


def _unbind(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    _loaded_driver(st, drv)
    bdf, dev = _bus_device(st, value)
    if dev["driver"] != drv:
        raise _oserr(errno.ENODEV, f"{bdf} is not bound to {drv}")
    _fail_if(fault, f"unbinding {bdf} from {drv}")
    _detach(st, bdf)


def _drivers_probe(st: State, value: str, fault: dict[str, Any] | None) -> None:
    bdf, dev = _bus_device(st, value)
    _fail_if(fault, f"probing {bdf}")
    if dev["driver"] is not None:
        return
    if _mode(fault) == "late_bind":
        st.setdefault("pending", []).append({"bdf": bdf, "driver": None})
        return
    _probe(st, bdf)


def _parse_id_fields(value: str) -> list[int]:
    """sscanf("%x %x %x %x %x %x %lx"): fields up to the first that does not parse."""
    out = []
    for tok in value.split()[:7]:
        t = tok[2:] if tok[:2].lower() == "0x" else tok
        m = re.match(r"[0-9a-fA-F]+", t)
        if not m:
            break
        out.append(int(m.group(0), 16))
        if m.end() != len(t):
            break
    return out


def _new_id(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    """new_id_store(): add a dynamic id, then bind every unbound device that now matches."""
    _loaded_driver(st, drv)
    fields = _parse_id_fields(value)
    if len(fields) < 2:
        raise _oserr(errno.EINVAL, f"new_id: expected 'vendor device', got {value!r}")
    vd = f"{fields[0] & 0xFFFF:04x}:{fields[1] & 0xFFFF:04x}"
    if len(fields) != 7:
        probe_dev = {"vendor": vd[:4], "device": vd[5:], "class": -1, "driver_override": None}
        if _match(st, drv, probe_dev):
            raise _oserr(errno.EEXIST, f"{drv} already handles {vd}")
    _fail_if(fault, f"new_id {vd} for {drv}")
    st.setdefault("dynids", {}).setdefault(drv, []).append(vd)
    for bdf in _driver_attach(st, drv):
        if _mode(fault) == "late_bind":
            st.setdefault("pending", []).append({"bdf": bdf, "driver": drv})
        else:
            _attach(st, bdf, drv)


def _remove_id(st: State, drv: str, value: str, fault: dict[str, Any] | None) -> None:
    _loaded_driver(st, drv)
    fields = _parse_id_fields(value)
    if len(fields) < 2:
        raise _oserr(errno.EINVAL, f"remove_id: expected 'vendor device', got {value!r}")
    vd = f"{fields[0] & 0xFFFF:04x}:{fields[1] & 0xFFFF:04x}"
    ids = st.setdefault("dynids", {}).get(drv, [])
    if vd not in ids:
        raise _oserr(errno.ENODEV, f"{drv} has no dynamic id {vd}")
    _fail_if(fault, f"remove_id {vd} for {drv}")
    ids.remove(vd)


# ---------------------------------------------------------------- modules


def _module_driver(module: str) -> str | None:
    norm = module.replace("-", "_")
    for drv, spec in DRIVERS.items():
        if drv.replace("-", "_") == norm or spec.get("module") == norm:
            return drv
    return None


def modprobe(root: Path, module: str) -> None:
    """Load a module: its driver registers and binds what it matches (driver_override too)."""
    root = Path(root)
    with _locked(root) as st:
        drv = _module_driver(module)
        if drv is None:
            raise _oserr(errno.ENOENT, f"modprobe: FATAL: Module {module} not found")
        if drv in st["drivers"]:
            return
        _load(st, drv)
        for bdf in _driver_attach(st, drv):
            _attach(st, bdf, drv)


def module_known(root: Path, module: str) -> bool:
    """``modprobe --dry-run``: whether the simulator has that module (nothing is loaded)."""
    return _module_driver(module) is not None


def settle(root: Path) -> None:
    """Run pending (late) driver binds now, as the next probe would."""
    with _locked(Path(root)):
        pass


# ---------------------------------------------------------------- netlink model


def _netdev(st: State, ifname: str) -> tuple[str, Dev] | None:
    for bdf, dev in st["devices"].items():
        net = dev.get("net")
        if net and net["ifname"] == ifname and _is_net(st, dev["driver"]):
            return bdf, dev
    return None


def _pf_for(st: State, ifname: str) -> tuple[str, Dev]:
    found = _netdev(st, ifname)
    if found is None:
        raise _oserr(errno.ENODEV, f"no such network device {ifname!r}")
    return found


def vf_info(root: Path, pf_ifname: str) -> list[dict[str, Any]]:
    """IFLA_VFINFO_LIST of a PF netdev, one dict per VF index."""
    with _locked(Path(root)) as st:
        return _vf_info(st, pf_ifname)


def vf_info_all(root: Path, pf_ifnames: list[str]) -> dict[str, list[dict[str, Any]]]:
    """vf_info of several PFs at once, as one RTM_GETLINK dump answers them (one state load)."""
    with _locked(Path(root)) as st:
        return {n: _vf_info(st, n) for n in pf_ifnames}


def _vf_info(st: State, pf_ifname: str) -> list[dict[str, Any]]:
    _, dev = _pf_for(st, pf_ifname)
    sr = dev.get("sriov")
    if sr is None:
        return []
    out = [{"vf": i, **s} for i, s in enumerate(sr["vfs"])]
    if _spec(st, dev["driver"]).get("vf_ops") == "igb":
        for x in out:  # igb_ndo_get_vf_config() leaves rss_query_en unreported (-1)
            x["query_rss"] = None
    return out


def vf_stats(root: Path, pf_ifname: str) -> list[dict[str, int] | None]:
    """IFLA_VF_STATS of a PF's VFs: the counters tests put in ``vf_stats``, else zeros (what
    the kernel reports for a driver without ndo_get_vf_stats)."""
    with _locked(Path(root)) as st:
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


def set_vf(root: Path, pf_ifname: str, vf: int, **settings: Any) -> None:
    """ndo_set_vf_* with igb/ixgbe semantics, applied in rtnetlink's order: an attribute that
    fails leaves the ones before it applied, as do_setvfinfo() does."""
    root = Path(root)
    known = set(_VF_DEFAULTS)
    unknown = set(settings) - known
    if unknown:
        raise TypeError(f"unknown VF settings: {sorted(unknown)}")
    with _locked(root) as st:
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
                fault = _fault_for(root, st, [path], shown)
                _set_one(st, dev, vf, group, groups[group], fault, path)
            except OSError as e:
                result = errno.errorcode.get(e.errno or 0, str(e.errno))
                raise
            finally:
                _log(root, path, shown, result)


def _set_one(
    st: State, dev: Dev, vf: int, group: str, vals: dict[str, Any],
    fault: dict[str, Any] | None, path: str,
) -> None:  # fmt: skip
    sr = dev.get("sriov")
    ops = _spec(st, dev["driver"]).get("vf_ops", "generic")
    if sr is None or not isinstance(vf, int) or vf < 0 or vf >= sr["num"]:
        raise _oserr(errno.EINVAL, f"{path}: VF index out of range")
    cur = sr["vfs"][vf]
    new: dict[str, Any] = {}
    if group == "mac":
        mac = str(vals["mac"]).lower()
        if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) or int(mac[:2], 16) & 1:
            raise _oserr(errno.EINVAL, f"{path}: invalid unicast MAC {vals['mac']!r}")
        new["mac"] = mac
    elif group == "vlan":
        vlan = int(vals.get("vlan", cur["vlan"]))
        qos = int(vals.get("qos", 0))
        proto = str(vals.get("vlan_proto", "802.1Q"))
        if not 0 <= vlan <= 4095 or not 0 <= qos <= 7:
            raise _oserr(errno.EINVAL, f"{path}: vlan 0-4095, qos 0-7")
        if proto not in ("802.1Q", "802.1ad"):
            raise _oserr(errno.EINVAL, f"{path}: unknown vlan protocol {proto!r}")
        if proto != "802.1Q" and ops in ("igb", "ixgbe"):
            raise _oserr(errno.EPROTONOSUPPORT, f"{path}: only 802.1Q")
        new.update(vlan=vlan, qos=qos, vlan_proto=proto)
    elif group == "rate":
        lo = int(vals.get("min_tx_rate", cur["min_tx_rate"]))
        hi = int(vals.get("max_tx_rate", cur["max_tx_rate"]))
        _check_rate(dev, ops, lo, hi, path)
        new.update(min_tx_rate=lo, max_tx_rate=hi)
    elif group == "link_state":
        state = _LINK_STATES.get(vals["link_state"])
        if ops == "igb":
            raise _oserr(errno.EOPNOTSUPP, f"{path}: igb has no ndo_set_vf_link_state")
        if state is None:
            raise _oserr(errno.EINVAL, f"{path}: link state auto|enable|disable")
        new["link_state"] = state
    elif group == "query_rss" and ops == "igb":
        raise _oserr(errno.EOPNOTSUPP, f"{path}: igb has no ndo_set_vf_rss_query_en")
    else:
        new[group] = bool(vals[group])
    _fail_if(fault, path)
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
            raise _oserr(errno.EOPNOTSUPP, f"{path}: VF rate limits need an 82576")
        if lo:
            raise _oserr(errno.EINVAL, f"{path}: igb has no min_tx_rate")
        if not carrier or hi < 0 or hi > speed:
            raise _oserr(errno.EINVAL, f"{path}: PF has no carrier or rate above link speed")
    elif ops == "ixgbe":
        if not carrier or speed != 10000 or lo:
            raise _oserr(errno.EINVAL, f"{path}: needs carrier at 10Gb/s and no min_tx_rate")
        if hi and (hi <= 10 or hi > speed):
            raise _oserr(errno.EINVAL, f"{path}: max_tx_rate 11..{speed}")
    elif lo < 0 or hi < 0 or (hi and lo > hi):
        raise _oserr(errno.EINVAL, f"{path}: min_tx_rate above max_tx_rate")


def link_info(root: Path, ifname: str) -> dict[str, Any]:
    """What the host-NIC safety checks need: addresses, master, state, default route."""
    with _locked(Path(root)) as st:
        return _link_info(st, ifname)


def _link_info(st: State, ifname: str) -> dict[str, Any]:
    found = _netdev(st, ifname)
    if found is not None:
        bdf, dev = found
        net = dev["net"]
        kind, ports = "device", []
    elif ifname in st["vnet"]:
        bdf, net = None, st["vnet"][ifname]
        kind, ports = net["kind"], list(net.get("ports", []))
    else:
        raise _oserr(errno.ENODEV, f"no such network device {ifname!r}")
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
        "operstate": _operstate(net, kind),
        "master": net.get("master"),
        "link": net.get("link"),  # the lower device of a vlan/macvlan (IFLA_LINK)
        "ports": ports,
        "addresses": list(st.get("addresses", {}).get(ifname, [])),
        "routes": routes,
        "default_route": any(r.get("dst") == "default" for r in routes),
    }


def links(root: Path) -> list[dict[str, Any]]:
    """Every link as :func:`link_info` describes it, from one state load (one RTM_GETLINK dump,
    one RTM_GETADDR and one RTM_GETROUTE dump on a real host)."""
    with _locked(Path(root)) as st:
        names = [*(n for n, (b, _) in _visible_netdevs(st).items() if b), *st["vnet"]]
        return [_link_info(st, n) for n in names]


def set_link(root: Path, ifname: str, up: bool, carrier: bool | None = None) -> None:
    """``ip link set IF up|down`` (and, for tests, a cable plugged in or not)."""
    with _locked(Path(root)) as st:
        found = _netdev(st, ifname)
        net = found[1]["net"] if found else st["vnet"].get(ifname)
        if net is None:
            raise _oserr(errno.ENODEV, f"no such network device {ifname!r}")
        net["up"] = bool(up)
        net["carrier"] = bool(up if carrier is None else carrier) and bool(up)
        if found and net["carrier"] and int(net.get("speed", -1)) < 0:
            net["speed"] = 10000 if found[1]["device"] == "10fb" else 1000


def _operstate(net: dict[str, Any], kind: str) -> str:
    if kind == "loopback":
        return "unknown"
    return "up" if net["up"] and net.get("carrier", True) else "down"


# ---------------------------------------------------------------- rendering the tree


def _put(p: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    try:
        if p.read_bytes() == data:
            return
    except OSError:
        pass
    p.write_bytes(data)


def _link(p: Path, target: Path) -> None:
    import shutil

    rel = os.path.relpath(target, p.parent)
    try:
        if os.readlink(p) == rel:
            return
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(p)
    os.symlink(rel, p)


def _rm(p: Path) -> None:
    import shutil

    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def _visible_netdevs(st: State) -> dict[str, tuple[str | None, dict[str, Any]]]:
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for bdf, dev in st["devices"].items():
        if dev.get("net") and _is_net(st, dev["driver"]):
            out[dev["net"]["ifname"]] = (bdf, dev["net"])
    for name, net in st["vnet"].items():
        out[name] = (None, net)
    return out


def _netdir(root: Path, st: State, ifname: str, bdf: str | None) -> Path:
    if bdf is None:
        return root / DEVICES / "virtual/net" / ifname
    return root / DEVICES / str(st["devices"][bdf]["path"]) / "net" / ifname


def _render(root: Path, st: State) -> None:
    """Reconcile the tree with the state: create, update, and remove what is stale."""
    devs: dict[str, Dev] = st["devices"]
    bus = root / BUS_DEVICES
    bus.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(bus):
        if name not in devs or not (bus / name).exists():
            target = Path(os.path.realpath(bus / name))
            if name not in devs and (root / DEVICES) in target.parents:
                _rm(target)
            _rm(bus / name)
    children: dict[str, list[tuple[int, str]]] = {}
    for d in devs.values():
        if d.get("physfn"):
            children.setdefault(d["physfn"], []).append((d["vf_index"], d["path"]))
    for bdf in sorted(devs, key=lambda b: devs[b]["path"].count("/")):
        d = devs[bdf]
        pf = d.get("physfn")
        payload = [d, children.get(bdf), pf and devs[pf]["path"], _is_net(st, d["driver"])]
        if d.get("sriov"):
            payload.append(_totalvfs(d))
        fp = _changed(st, f"dev:{bdf}", payload, root / DEVICES / d["path"] / "uevent")
        if fp is not None:
            _render_device(root, st, bdf)
            _link(bus / bdf, root / DEVICES / d["path"])
            st["_fp"][f"dev:{bdf}"] = fp
    _render_net(root, st)
    _render_drivers(root, st)
    _render_groups(root, st)
    _render_misc(root, st)


def _changed(st: State, key: str, payload: Any, witness: Path) -> str | None:
    """A new fingerprint when this part of the tree must be re-rendered, else None: skipping
    unchanged devices keeps a write on a host with 100+ VFs cheap."""
    import hashlib

    fp = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    if st.setdefault("_fp", {}).get(key) == fp and os.path.lexists(witness):
        return None
    return fp


def _hex(v: int, width: int) -> str:
    return f"0x{v:0{width}x}"


def _render_device(root: Path, st: State, bdf: str) -> None:
    import shutil

    from vfctl.host import cfgbuild

    dev = st["devices"][bdf]
    d = root / DEVICES / dev["path"]
    d.mkdir(parents=True, exist_ok=True)
    pf = dev.get("physfn")
    cfg = d / "config"
    if not cfg.exists() and pf is not None:
        pf_cfg = (root / DEVICES / st["devices"][pf]["path"] / "config").read_bytes()
        _atomic_write(cfg, cfgbuild.vf_function(pf_cfg))
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
            sriov_totalvfs=str(_totalvfs(dev)),
            sriov_numvfs=str(sr["num"]),
            sriov_offset=str(sr["offset"]),
            sriov_stride=str(sr["stride"]),
            sriov_vf_device=sr["vf_device"],
            sriov_drivers_autoprobe=str(sr["autoprobe"]),
        )
        if sr.get("vf_total_msix") is not None:
            attrs["sriov_vf_total_msix"] = str(sr["vf_total_msix"])
    for k, v in attrs.items():
        _put(d / k, v if k == "resource" else v + "\n")
    _link(d / "subsystem", root / "sys/bus/pci")
    if drv:
        _link(d / "driver", root / BUS_DRIVERS / drv)
    elif d.joinpath("driver").is_symlink():
        (d / "driver").unlink()
    if dev["iommu_group"] is not None:
        _link(d / "iommu_group", root / IOMMU_GROUPS / str(dev["iommu_group"]))
    elif d.joinpath("iommu_group").is_symlink():
        (d / "iommu_group").unlink()
    if pf is not None:
        _link(d / "physfn", root / DEVICES / st["devices"][pf]["path"])
    want = {
        f"virtfn{v['vf_index']}": v["path"]
        for v in st["devices"].values()
        if v.get("physfn") == bdf
    }
    for name in os.listdir(d):
        if name.startswith("virtfn") and name not in want:
            (d / name).unlink()
    for name, path in want.items():
        _link(d / name, root / DEVICES / path)
    net = dev.get("net")
    keep = net["ifname"] if net and _is_net(st, drv) else None
    if (d / "net").is_dir():
        for name in os.listdir(d / "net"):
            if name != keep:
                shutil.rmtree(d / "net" / name)
        if keep is None:
            (d / "net").rmdir()


def _render_net(root: Path, st: State) -> None:
    nets = _visible_netdevs(st)
    cls = root / "sys/class/net"
    cls.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(cls):
        if name not in nets:
            target = Path(os.path.realpath(cls / name))
            if (root / DEVICES / "virtual/net") in target.parents:
                _rm(target)
            _rm(cls / name)
    for name, (bdf, net) in sorted(nets.items()):
        nd = _netdir(root, st, name, bdf)
        port_dirs = sorted(
            (p, str(_netdir(root, st, p, nets[p][0]))) for p in net.get("ports", []) if p in nets
        )
        payload = [str(nd), net, net.get("master") in nets, port_dirs]
        fp = _changed(st, f"net:{name}", payload, cls / name)
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
            "operstate": _operstate(net, kind),
            "carrier": "1" if (carrier and up) else "0",
            "dev_id": "0x0",
            "dev_port": "0",
            "tx_queue_len": "1000",
        }
        if bdf:
            attrs["speed"] = str(net.get("speed", -1) if carrier and up else -1)
            attrs["duplex"] = "full" if carrier and up else "unknown"
            _link(nd / "device", root / DEVICES / st["devices"][bdf]["path"])
        for k, v in attrs.items():
            _put(nd / k, v + "\n")
        master = net.get("master")
        for name2 in os.listdir(nd):
            if name2.startswith("upper_") and name2 != f"upper_{master}":
                (nd / name2).unlink()
        if master and master in nets:
            mdir = _netdir(root, st, master, None)
            if nets[master][1].get("kind") == "bridge":  # a bond's port has no brport
                (nd / "brport").mkdir(exist_ok=True)
                _put(nd / "brport/state", "3\n")
            else:
                _rm(nd / "brport")
            _link(nd / "master", mdir)
            _link(nd / f"upper_{master}", mdir)
        else:
            for x in ("master", "brport"):
                _rm(nd / x)
        if kind == "bridge":
            (nd / "bridge").mkdir(exist_ok=True)
            for k, v in {"stp_state": "0", "forward_delay": "0", "vlan_filtering": "0"}.items():
                _put(nd / "bridge" / k, v + "\n")
            brif = nd / "brif"
            brif.mkdir(exist_ok=True)
            ports = [p for p in net.get("ports", []) if p in nets]
            for p in os.listdir(brif):
                if p not in ports:
                    _rm(brif / p)
            for p in os.listdir(nd):
                if p.startswith("lower_") and p[6:] not in ports:
                    (nd / p).unlink()
            for p in ports:
                pdir = _netdir(root, st, p, nets[p][0])
                _link(brif / p, pdir / "brport")
                _link(nd / f"lower_{p}", pdir)
        _link(cls / name, nd)


def _render_drivers(root: Path, st: State) -> None:
    base = root / BUS_DRIVERS
    base.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(base):
        if name not in st["drivers"]:
            _rm(base / name)
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
        mod = _spec(st, drv).get("module")
        if mod:
            _link(dd / "module", root / "sys/module" / mod)
        want = set(bound.get(drv, []))
        for name in os.listdir(dd):
            if _BDF.fullmatch(name) and name not in want:
                (dd / name).unlink()
        for bdf in want:
            _link(dd / bdf, root / DEVICES / st["devices"][bdf]["path"])


def _render_groups(root: Path, st: State) -> None:
    base = root / IOMMU_GROUPS
    base.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for bdf, dev in st["devices"].items():
        if dev["iommu_group"] is not None:
            groups.setdefault(str(dev["iommu_group"]), []).append(bdf)
    for name in os.listdir(base):
        if name not in groups:
            _rm(base / name)
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
        fp = _changed(st, f"group:{g}", payload, base / g / "type")
        if fp is None:
            continue
        st["_fp"][f"group:{g}"] = fp
        gd = base / g / "devices"
        gd.mkdir(parents=True, exist_ok=True)
        _put(base / g / "type", st.get("iommu_type", "DMA") + "\n")
        _put(base / g / "reserved_regions", "")
        for name in os.listdir(gd):
            if name not in members:
                (gd / name).unlink()
        for bdf in members:
            _link(gd / bdf, root / DEVICES / st["devices"][bdf]["path"])
    for name in os.listdir(vfio):
        if name not in want_vfio:
            _rm(vfio / name)
    for name in want_vfio:
        if not (vfio / name).exists():
            (vfio / name).write_bytes(b"")


def _render_misc(root: Path, st: State) -> None:
    mods = root / "sys/module"
    mods.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(mods):
        if name not in st["modules"]:
            _rm(mods / name)
    for m in st["modules"]:
        (mods / m).mkdir(exist_ok=True)
        _put(mods / m / "initstate", "live\n")
        _put(mods / m / "refcnt", "0\n")
    pci = root / "sys/bus/pci"
    for f in ("drivers_probe", "rescan"):
        if not (pci / f).exists():
            (pci / f).write_bytes(b"")
    _put(pci / "drivers_autoprobe", "1\n")
    (root / "proc").mkdir(exist_ok=True)
    _put(root / "proc/cmdline", st["cmdline"] + "\n")
    (root / "etc").mkdir(exist_ok=True)
    _put(root / "etc/hostname", st["hostname"] + "\n")


# ---------------------------------------------------------------- init and snapshot


def _prepare(root: Path) -> None:
    """An empty directory or an existing simulated host (which is wiped); nothing else."""
    root.mkdir(parents=True, exist_ok=True)
    if _simdir(root).is_dir():
        for name in ("sys", "dev", "proc", "etc", MARKER):
            _rm(root / name)
    elif any(root.iterdir()):
        raise UsageError(f"{root} is not empty and not a simulated host: refusing to write there")
    _simdir(root).mkdir()
    (_simdir(root) / "writes.log").write_text("")


def _materialize(root: Path, st: State, configs: dict[str, bytes]) -> None:
    for bdf, data in configs.items():
        d = root / DEVICES / st["devices"][bdf]["path"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "config").write_bytes(data)
    _save(root, st)
    with _locked_raw(root) as saved:
        _commit(root, saved, full=True)


def init(root: Path, preset: str = "default") -> None:
    """Write a simulated host under ``root`` (an empty directory or an earlier simulated host)."""
    root = Path(root)
    from vfctl.host.sim_presets import make  # builds config spaces: only here

    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    st, configs = make(preset)
    _prepare(root)
    _materialize(root, st, configs)


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
    _prepare(dest)
    _materialize(dest, st, configs)


def _snapshot_state(src: Path) -> tuple[State, dict[str, bytes]]:
    sysdev = Path(os.path.realpath(src / DEVICES))
    bus = src / BUS_DEVICES
    devices: dict[str, Dev] = {}
    configs: dict[str, bytes] = {}
    bdfs = sorted(n for n in (os.listdir(bus) if bus.is_dir() else []) if _BDF.fullmatch(n))
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
    from vfctl.host import cfgbuild

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
        "vfs": [dict(_VF_DEFAULTS) for _ in range(num)],
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
    drivers = sorted(os.listdir(drivers_dir)) if drivers_dir.is_dir() else []
    specs: dict[str, dict[str, Any]] = {}
    for drv in drivers:
        if drv in DRIVERS:
            continue
        mod_link = drivers_dir / drv / "module"
        mod = os.path.basename(os.readlink(mod_link)) if mod_link.is_symlink() else None
        ids = sorted({_vd(d) for d in devices.values() if d["driver"] == drv})
        is_net = any(d["driver"] == drv and d["net"] for d in devices.values())
        specs[drv] = {"module": mod, "ids": ids, "net": is_net, "sriov": True}
    # drivers listed in bus order the way the kernel registered them is unknowable; known
    # drivers first keeps the simulator's matching deterministic
    order = [d for d in DRIVERS if d in drivers] + [d for d in drivers if d not in DRIVERS]
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
    if not _simdir(src).is_dir():
        return
    nets = {d["net"]["ifname"]: d for d in st["devices"].values() if d.get("net")}
    for name in [*nets, *st["vnet"]]:
        try:
            info = link_info(src, name)
        except OSError:
            continue
        if info["addresses"]:
            st["addresses"][name] = info["addresses"]
        st["routes"].extend(info["routes"])
        dev = nets.get(name)
        if dev is not None and dev.get("sriov"):
            vfs = vf_info(src, name)
            dev["sriov"]["vfs"] = [{k: v for k, v in x.items() if k != "vf"} for x in vfs]
