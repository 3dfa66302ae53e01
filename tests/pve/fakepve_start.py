"""VM start and stop on the fake PVE node, modelled on qemu-server (read, not copied).

Sources: proxmox/qemu-server ``src/PVE/QemuServer/PCI.pm`` at e6352be6 — ``parse_hostpci``
(host XOR mapping; a mapping gives one alternative per entry of this node, in order; every id
expanded through ``PVE::SysFSTools::lspci``, so a function-less id is the functions that
exist, and an id matching nothing fails "no PCI device found"), ``choose_hostpci_devices``
(one alternative: used as is; several: the first none of whose ids is used by an earlier
slot and that ``reserve_pci_usage`` accepts, else "could not find a free device"),
``reserve_pci_usage`` and the reservation file ``/run/qemu-server/pci-id-reservations``
(``<id> <vmid> time:<epoch>`` in the start window, ``pid:<pid>`` once running; another VM's
reservation blocks while its time is in the future or while that VM runs locally with that
pid, per ``PVE::QemuServer::Helpers::vm_running_locally`` and its pid file
``/var/run/qemu-server/<vmid>.pid``). Also pve-docs ``qm.adoc`` "Resource Mapping".

The node's hardware is a simulated host root (``vfctl sim init``): its sysfs is the PCI
listing, and a started VM becomes a QEMU stand-in there (``vfctl.sim.vm``) holding the
chosen functions' ``/dev/vfio/<group>`` open.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

PCIRE = r"[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?"
RESERVATION_RE = re.compile(rf"({PCIRE})\s(\d+)\s(time|pid):(\d+)")
RESERVATIONS = "run/qemu-server/pci-id-reservations"
PIDDIR = "var/run/qemu-server"
MAX_HOSTPCI = 16
START_WINDOW = 10  # qemu-server reserves with a 10 s timeout before the QEMU pid exists


class StartError(Exception):
    """What ``qm start`` dies with."""


def read_reservations(root: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    try:
        text = (root / RESERVATIONS).read_text()
    except FileNotFoundError:
        return out
    for line in text.split("\n"):
        m = RESERVATION_RE.fullmatch(line)
        if m:
            out[m[1]] = {"vmid": int(m[2]), m[3]: int(m[4])}
    return out


def write_reservations(root: Path, res: dict[str, dict[str, int]]) -> None:
    lines = []
    for pid_id in sorted(res):
        r = res[pid_id]
        kind = "pid" if "pid" in r else "time"
        lines.append(f"{pid_id} {r['vmid']} {kind}:{r[kind]}\n")
    p = root / RESERVATIONS
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, p)


def running_pid(root: Path, vmid: int) -> int | None:
    """vm_running_locally: the pid file names a live process."""
    try:
        pid = int((root / PIDDIR / f"{vmid}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if (root / "proc" / str(pid)).is_dir() else None


def lspci(root: Path, pci_id: str) -> list[str]:
    """SysFSTools::lspci of one id: the functions that exist (a domain-less id means 0000)."""
    full_id = pci_id if pci_id.count(":") == 2 else f"0000:{pci_id}"
    present = sorted(os.listdir(root / "sys/bus/pci/devices"))
    if "." in full_id:
        return [a for a in present if a == full_id]
    return [a for a in present if a.startswith(full_id + ".")]


def reservable(
    root: Path, res: dict[str, dict[str, int]], pci_id: str, vmid: int, now: float
) -> bool:
    r = res.get(pci_id)
    if r is None or r["vmid"] == vmid:
        return True
    if "time" in r and r["time"] > now:
        return False
    return not ("pid" in r and running_pid(root, r["vmid"]) == r["pid"])


def alternatives(
    st: dict[str, Any], schema: Any, node: str, slot: str, value: str
) -> tuple[list[list[str]], dict[str, Any]]:
    props = schema.formats["pve-qm-hostpci"]["properties"]
    try:
        d = schema.property_string(props, value)
    except ValueError as exc:
        raise StartError(f"{slot}: {exc}") from None
    if "host" in d and "mapping" in d:
        raise StartError("Cannot set both 'host' and 'mapping'.")
    if "mapping" in d:
        m = st["mappings"].get(d["mapping"])
        item = schema.paths["/cluster/mapping/pci"]["methods"]["POST"]["parameters"]
        entries = []
        for raw in (m or {}).get("map", []):
            e = schema.property_string(item["properties"]["map"]["items"]["format"], raw)
            if e["node"] == node:
                entries.append(e)
        if not entries:
            raise StartError(f"PCI device mapping not found for '{d['mapping']}'")
        return [e["path"].split(";") for e in entries], d
    if "host" in d:
        return [d["host"].split(";")], d
    raise StartError("Either 'host' or 'mapping' must be set.")


def start(fake: Any, vmid: int, root: Path, now: float | None = None) -> dict[str, list[str]]:
    """``qm start``: pending applied, devices chosen and reserved, QEMU stand-in running."""
    from vfctl.sim import vm as sim_vm

    t = time.time() if now is None else now
    with fake.edit() as st:
        vm = st["vms"][str(vmid)]
        if vm["status"] == "running":
            raise StartError(f"VM {vmid} already running")
        vm["config"].update(vm.get("pending") or {})
        for k in vm.get("pending_delete") or []:
            vm["config"].pop(k, None)
        vm["pending"], vm["pending_delete"] = {}, []
        res = read_reservations(root)
        used: set[str] = set()
        chosen: dict[str, list[str]] = {}
        for i in range(MAX_HOSTPCI):
            slot = f"hostpci{i}"
            value = vm["config"].get(slot)
            if value is None:
                continue
            alts, d = alternatives(st, fake.schema, vm["node"], slot, value)
            expanded = []
            for alt in alts:
                ids: list[str] = []
                for pci_id in alt:
                    devs = lspci(root, pci_id)
                    if not devs:
                        raise StartError(f"no PCI device found for '{pci_id}'")
                    ids += devs
                expanded.append(ids)
            pick = None
            for ids in expanded:
                if len(expanded) > 1 and any(x in used for x in ids):
                    continue
                if all(reservable(root, res, x, vmid, t) for x in ids):
                    pick = ids
                    break
                if len(expanded) == 1:
                    x = next(x for x in ids if not reservable(root, res, x, vmid, t))
                    raise StartError(f"PCI device '{x}' already in use by VMID '{res[x]['vmid']}'")
            if pick is None:
                raise StartError(f"could not find a free device for '{slot}'")
            if any(x in used for x in pick):
                raise StartError(f"device '{pick[0]}' assigned more than once")
            used.update(pick)
            if "mdev" not in d:
                chosen[slot] = pick
        groups = []
        for ids in chosen.values():
            for x in ids:
                link = root / "sys/bus/pci/devices" / x / "iommu_group"
                groups.append(int(os.path.basename(os.readlink(link))))
        pid = sim_vm.start(root, "proxmox", f"vm{vmid}", groups)
        for x in used:
            res[x] = {"vmid": vmid, "pid": pid}
        write_reservations(root, res)
        vm["status"] = "running"
        return chosen


def reserve_only(fake: Any, vmid: int, root: Path, ids: list[str], now: float) -> None:
    """The start window: reserved with ``time:`` while QEMU is being spawned (no pid yet)."""
    res = read_reservations(root)
    for x in ids:
        res[x] = {"vmid": vmid, "time": int(now) + START_WINDOW}
    write_reservations(root, res)


def stop(fake: Any, vmid: int, root: Path) -> None:
    from vfctl.sim import vm as sim_vm

    with fake.edit() as st:
        st["vms"][str(vmid)]["status"] = "stopped"
    sim_vm.stop(root, "proxmox", f"vm{vmid}")
    res = {k: r for k, r in read_reservations(root).items() if r["vmid"] != vmid}
    write_reservations(root, res)
