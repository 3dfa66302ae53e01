"""The host's current SR-IOV state as a profile (`vfctl export`): applying it changes nothing."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import yaml

from vfctl import vfattrs
from vfctl.model import PF, VF, HostModel, VFSettings
from vfctl.profile_yaml import Dumper12

_EXPORT = vfattrs.KEY_OF


def export_settings(s: VFSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, key in _EXPORT.items():
        v = vfattrs.shown(attr, getattr(s, attr))
        if v is None or (attr == "mac" and v == vfattrs.DEFAULTS["mac"]):
            continue  # unreported; a MAC of zeros is "none"
        out[key] = v
    return out


def export_attach(v: VF) -> dict[str, Any] | None:
    if len(v.attached_to) != 1:
        return None
    a = v.attached_to[0]
    out: dict[str, Any] = {"vm": a.vm, "backend": a.backend}
    if a.backend == "libvirt":
        out["mode"] = "interface" if a.element == "interface" else "hostdev"
    return out


def export(
    model: HostModel, pfs: Sequence[PF] | None = None, pooled: Collection[str] = ()
) -> dict[str, Any]:
    """The host's current state as a profile; applying it changes nothing.

    ``pooled``: pool members, whose guest holds them through the pool, not a VF attach.
    """
    out: list[dict[str, Any]] = []
    for pf in pfs if pfs is not None else model.pfs:
        e: dict[str, Any] = {"match": {"pci": pf.address}, "total-vfs": pf.num_vfs}
        if pf.autoprobe is not None:
            e["drivers-autoprobe"] = pf.autoprobe
        vfs = []
        for v in pf.vfs:
            ve: dict[str, Any] = {"id": v.index}
            if pf.netdev:
                ve.update(export_settings(v.settings))
            if v.driver_override and v.driver_override == v.driver:
                ve["driver"] = v.driver_override
            att = export_attach(v) if v.address not in pooled else None
            if att:
                ve["attach"] = att
            if len(ve) > 1:
                vfs.append(ve)
        if vfs:
            e["vfs"] = vfs
        out.append(e)
    return {"version": 1, "pfs": out}


def dump_profile(doc: Mapping[str, Any], comment: str = "") -> str:
    head = f"# {comment}\n" if comment else ""
    text = yaml.dump(dict(doc), Dumper=Dumper12, sort_keys=False, default_flow_style=False)
    return head + text
