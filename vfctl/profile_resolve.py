"""A profile resolved against the host model: each PF entry bound to a host PF, defaults and
VF ranges expanded and validated, every problem located; and the VFs a count change creates.

Shared by the host planner (``converge``) and the pool planner (``profile_pools``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vfctl import vfattrs, vfsettings
from vfctl.discover import resolve_pf
from vfctl.errors import HostError, NotFoundError, RefusedError, UsageError
from vfctl.host.sysfs import Host
from vfctl.model import PF, VF, HostModel
from vfctl.pci import address as pciaddr
from vfctl.profile_doc import Path_, Problem, Profile, ProfileInvalid, desired_of, vf_bounds, vf_ids
from vfctl.profile_schema import SETTING_KEYS


@dataclass(frozen=True)
class VFWant:
    index: int
    entry: Mapping[str, Any]  # merged: defaults, then the VF's own keys
    path: Path_  # where the VF's own entry is (or the PF's, for defaults only)
    settings: vfattrs.Desired = field(default_factory=vfattrs.Desired)  # validated


@dataclass(frozen=True)
class Target:
    """One profile PF entry resolved against the host."""

    pf: PF
    path: Path_
    total_vfs: int | None
    autoprobe: bool | None
    vfs: tuple[VFWant, ...]


# ---------------------------------------------------------------- resolving against the host


def hostname(host: Host) -> str:
    """The host's name as the profile's ``host`` guard compares it (short, lower case)."""
    name = host.read_opt("etc/hostname")
    if not name and str(host.root) == "/":
        name = socket.gethostname()
    return (name or "").strip().split(".")[0].lower()


def check_host(prof: Profile, host: Host) -> None:
    want = prof.host
    if want is None:
        return
    have = hostname(host)
    if want.split(".")[0].lower() != have:
        line, col = prof.locs.get(("host",), (1, 1))
        raise RefusedError(
            f"{prof.file}:{line}:{col}: profile is for host {want!r}, this host is "
            f"{have or 'unnamed'!r}; refusing to apply it here"
        )


def match_pf(model: HostModel, m: Mapping[str, Any], host: Host | None = None) -> PF:
    if "netdev" in m:
        return resolve_pf(model, str(m["netdev"]), host)
    if "pci" in m:
        return resolve_pf(model, str(m["pci"]), host)
    vendor, device = str(m["vendor"]).lower(), str(m["device"]).lower()
    hits = sorted(
        (p for p in model.pfs if p.vendor_id == vendor and p.device_id == device),
        key=lambda p: p.address,
    )
    idx = int(m.get("index", 0))
    if idx >= len(hits):
        have = ", ".join(p.address for p in hits) or "none"
        raise NotFoundError(
            f"no SR-IOV PF {vendor}:{device} number {idx} (0-based); PFs with these ids: {have}"
        )
    return hits[idx]


def resolve(prof: Profile, model: HostModel, host: Host | None = None) -> list[Target]:
    """Bind each PF entry to a host PF and expand defaults/ranges; every problem is located.

    ``host``: lets a PF be matched by any of its netdev names (``resolve_pf``).
    """
    problems: list[Problem] = []
    targets: list[Target] = []
    seen: dict[str, Path_] = {}
    d = prof.defaults
    vf_defaults = {k: v for k, v in d.items() if k != "drivers-autoprobe"}
    for pi, entry in enumerate(prof.pfs):
        at: Path_ = ("pfs", pi)
        try:
            pf = match_pf(model, entry["match"], host)
        except (NotFoundError, UsageError) as e:
            problems.append(prof.problem((*at, "match"), f"unknown PF: {e.message}"))
            continue
        if pf.address in seen:
            line = prof.locs.get(seen[pf.address], (0, 0))[0]
            problems.append(
                prof.problem((*at, "match"), f"PF {pf.address} is already matched at line {line}")
            )
            continue
        seen[pf.address] = (*at, "match")
        total = entry.get("total-vfs")
        name = pf.netdev or pf.address
        if total is not None and total > pf.total_vfs:
            problems.append(
                prof.problem(
                    (*at, "total-vfs"),
                    f"{name} supports at most {pf.total_vfs} VFs (sriov_totalvfs), not {total}",
                )
            )
            continue
        count = pf.num_vfs if total is None else total
        own: dict[int, tuple[Mapping[str, Any], Path_]] = {}
        for vi, vf in enumerate(entry.get("vfs") or []):
            hi = vf_bounds(vf["id"])[1]
            if hi >= count:  # checked before the range is expanded
                why = "it has" if total is None else "total-vfs is"
                problems.append(
                    prof.problem(
                        (*at, "vfs", vi, "id"),
                        f"VF id {hi} is out of range for {name}: {why} {count}",
                    )
                )
                continue
            for i in vf_ids(vf["id"]):
                own[i] = (vf, (*at, "vfs", vi))
        wants = []
        for i in range(count):
            mine, path = own.get(i, ({}, at))
            merged = {**vf_defaults, **{k: v for k, v in mine.items() if k != "id"}}
            if merged:
                wants.append(VFWant(i, merged, path, vfsettings.validate(desired_of(merged))))
        if not pf.netdev and any(k in w.entry for w in wants for k, _ in SETTING_KEYS):
            problems.append(
                prof.problem(
                    at,
                    f"{pf.address} has no netdev: VF settings "
                    "(mac-address, vlan-id, ...) go through the PF's "
                    "interface",
                )
            )
            continue
        auto = entry.get("drivers-autoprobe", d.get("drivers-autoprobe"))
        targets.append(Target(pf, at, total, auto, tuple(wants)))
    if problems:
        raise ProfileInvalid(problems)
    return targets


def predicted_vfs(pf: PF, n: int) -> tuple[VF, ...]:
    """The VFs the kernel will create: addresses by the offset/stride rule, no driver yet."""
    if n and (pf.vf_offset is None or pf.vf_stride is None):
        raise HostError(f"{pf.address}: VF offset/stride unknown; cannot plan its new VFs")
    return tuple(
        VF(
            index=i,
            address=pciaddr.vf_address(pf.address, pf.vf_offset or 0, pf.vf_stride or 0, i),
            driver=None,
            driver_override=None,
            netdev=None,
            iommu_group=None,
            vendor_id=pf.vendor_id,
            device_id=pf.vf_device_id or "????",
        )
        for i in range(n)
    )
