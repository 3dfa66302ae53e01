"""The host facts a rollback must give back, captured before a run and compared after.

Why: undoing actions one by one can still leave a host different from before (a VF re-created
while autoprobe had another value comes back driverless). So the journal keeps this snapshot
from the start of the run, and rollback and ``vfctl recover`` end by comparing against it:
only an equal host counts as rolled back.

What counts, per SR-IOV PF: sriov_numvfs, sriov_drivers_autoprobe, and per VF its address,
driver, driver_override, whether it has a netdev, and the admin settings the PF reports.
Not the netdev's name or random MAC (a re-created VF gets new ones, as on real NICs), nor
IOMMU group numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vfctl import vfattrs
from vfctl.host.sysfs import PCI_DEVICES, Host
from vfctl.model import HostModel

SETTINGS = vfattrs.NAMES
Snapshot = dict[str, Any]


def capture(host: Host) -> Snapshot:
    """Read the snapshot now (sysfs and netlink)."""
    from vfctl.discover import discover, with_vf_info
    from vfctl.host import netlink

    if not host.isdir(PCI_DEVICES):
        return {"pfs": {}}
    m = discover(host)
    info = {p.netdev: netlink.vf_info(host, p.netdev) for p in m.pfs if p.netdev and p.num_vfs}
    return of_model(with_vf_info(m, info))


def of_model(m: HostModel) -> Snapshot:
    """The snapshot of a discovered model (its VF settings read from netlink, as capture's)."""
    pfs: dict[str, Any] = {}
    for pf in m.pfs:
        vfs = []
        for vf in pf.vfs:
            s = vf.settings
            vfs.append(
                {
                    "index": vf.index,
                    "address": vf.address,
                    "driver": vf.driver,
                    "driver_override": vf.driver_override,
                    "netdev": vf.netdev is not None,
                    "settings": {k: getattr(s, k) for k in SETTINGS if getattr(s, k) is not None},
                }
            )
        pfs[pf.address] = {
            "netdev": pf.netdev,
            "num_vfs": pf.num_vfs,
            "autoprobe": pf.autoprobe,
            "vfs": vfs,
        }
    return {"pfs": pfs}


def _vf_diffs(pf: str, old: Mapping[str, Any], new: Mapping[str, Any] | None) -> list[str]:
    where = f"{old.get('address')} (VF {old.get('index')} of {pf})"
    if new is None:
        return [f"{where}: missing"]
    out = []
    for key, name in (("address", "address"), ("driver", "driver"),
                      ("driver_override", "driver_override")):  # fmt: skip
        if old.get(key) != new.get(key):
            out.append(f"{where}: {name} {new.get(key) or 'none'}, was {old.get(key) or 'none'}")
    if bool(old.get("netdev")) != bool(new.get("netdev")):
        out.append(f"{where}: {'has a netdev' if new.get('netdev') else 'no netdev'}, was "
                   f"{'with' if old.get('netdev') else 'without'}")  # fmt: skip
    so, sn = old.get("settings") or {}, new.get("settings") or {}
    for k in sorted(set(so) | set(sn)):
        if so.get(k) != sn.get(k):
            out.append(f"{where}: {k} {sn.get(k)}, was {so.get(k)}")
    return out


def compare(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line per difference, for the PFs of ``before``; empty when the host is as it was."""
    out: list[str] = []
    cur = now.get("pfs") or {}
    for addr, old in sorted((before.get("pfs") or {}).items()):
        new = cur.get(addr)
        if new is None:
            out.append(f"{addr}: PF missing")
            continue
        for key in ("num_vfs", "autoprobe"):
            if old.get(key) != new.get(key):
                out.append(f"{addr}: {key} {new.get(key)}, was {old.get(key)}")
        by_index = {v.get("index"): v for v in new.get("vfs") or []}
        for vf in old.get("vfs") or []:
            out += _vf_diffs(addr, vf, by_index.get(vf.get("index")))
        extra = sorted(set(by_index) - {v.get("index") for v in old.get("vfs") or []})
        if extra:
            out.append(f"{addr}: VFs {extra} were not there")
    return out


def valid(snap: Any) -> bool:
    """The shape a journal must hold (it is read back by another process)."""
    if not isinstance(snap, dict) or not isinstance(snap.get("pfs"), dict):
        return False
    for pf in snap["pfs"].values():
        if not isinstance(pf, dict) or not isinstance(pf.get("vfs"), list):
            return False
        if not all(isinstance(v, dict) and isinstance(v.get("settings", {}), dict)
                   for v in pf["vfs"]):  # fmt: skip
            return False
    return True
