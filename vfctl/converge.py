"""Profile + host model → ordered actions (autoprobe → numvfs → VF settings → bind → attach).

The host phases come from the pure planners (``plan_host``: the same in-use rules as
`enable`/`bind`); the profile is resolved against the model by ``profile_resolve``. When a
PF's VF count changes, every VF is recreated by the kernel, so later phases are planned
against *predicted* VFs (addresses from the SR-IOV offset/stride rule, no driver, unknown
settings): the whole run is one journaled plan, and ``verify`` re-reads the host afterwards.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from vfctl import plan_host, profile_export, vfattrs, vfsettings
from vfctl.backends.base import AttachRequest, Backend
from vfctl.errors import (
    BackendError,
    HostError,
    NotFoundError,
    RefusedError,
    UsageError,
    VfctlError,
)
from vfctl.host.sysfs import Host
from vfctl.model import PF, VF, HostModel
from vfctl.plan import Action
from vfctl.profile import (
    Path_,
    Profile,
)
from vfctl.profile_resolve import Target, VFWant, predicted_vfs

PHASES = ("autoprobe", "numvfs", "settings", "bind", "pools", "attach")
DEFAULT_DRIVER = "default"


@dataclass
class Plan:
    phases: dict[str, list[Action]] = field(default_factory=lambda: {p: [] for p in PHASES})
    attach_requests: list[tuple[str, AttachRequest, Path_]] = field(default_factory=list)
    needs_backend: list[dict[str, Any]] = field(default_factory=list)
    pool_checks: list[Callable[[HostModel], list[str]]] = field(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        return [a for p in PHASES for a in self.phases[p]]

    def rows(self) -> list[tuple[str, Action]]:
        return [(p, a) for p in PHASES for a in self.phases[p]]


# ---------------------------------------------------------------- planning


def _driver(w: VFWant) -> str | None:
    return w.entry.get("driver")


def plan(
    model: HostModel,
    targets: Sequence[Target],
    backend: Callable[[str], Backend] | None,
    pve_node: str | None = None,
    attach: bool = True,
    prof: Profile | None = None,
    host: Host | None = None,
) -> Plan:
    """Ordered actions for the host part, then attach through ``backend(name)``.

    A function of the model and the resolved targets; ``host`` only lets the pools section
    match a PF by any of its netdev names, as ``resolve`` does. ``backend`` raises
    VfctlError when that backend is not available; then the attach part is left out and
    recorded in ``needs_backend`` (the caller decides: warn or refuse).
    """
    out = Plan()
    ident = model.host_id
    finals: list[tuple[Target, VFWant, PF, VF]] = []
    after: dict[str, PF] = {}  # each PF as the PF phases leave it (pools are planned on it)
    for t in targets:
        pf = t.pf
        out.phases["autoprobe"] += plan_host.plan_autoprobe(pf, t.autoprobe)
        pf1 = dataclasses.replace(
            pf, autoprobe=pf.autoprobe if t.autoprobe is None else t.autoprobe
        )
        n = pf.num_vfs if t.total_vfs is None else t.total_vfs
        acts = (
            plan_host.plan_numvfs(model, pf1, n, was_autoprobe=pf.autoprobe)
            if t.total_vfs is not None
            else []
        )
        out.phases["numvfs"] += acts
        vfs = predicted_vfs(pf1, n) if acts else pf.vfs
        pf2 = dataclasses.replace(pf1, num_vfs=n, vfs=tuple(vfs))
        after[pf.address] = pf2
        by_driver: dict[str | None, list[VF]] = {}
        for w in t.vfs:
            v = pf2.vf(w.index)
            if v is None:  # the kernel has fewer virtfn links than sriov_numvfs says
                raise HostError(f"{pf.address}: VF {w.index} has no virtfn{w.index} link")
            if not w.settings.empty():
                out.phases["settings"] += vfsettings.plan_set(pf2, v, w.settings, ident=ident)
            drv = _driver(w)
            if drv is not None:
                by_driver.setdefault(None if drv == DEFAULT_DRIVER else drv, []).append(v)
            finals.append((t, w, pf2, _final(v, w, pf2, ident)))
        for drv, group in by_driver.items():
            out.phases["bind"] += plan_host.plan_bind(model, pf2, group, drv)
    if prof is not None and (prof.data.get("pools") or prof.data.get("attach")):
        from vfctl import profile_pools

        acts, atts, needs, checks = profile_pools.plan(
            model, prof, lambda q: after.get(q.address, q), backend, attach, host
        )
        out.phases["pools"] += acts
        out.phases["attach"] += atts
        out.needs_backend += needs
        out.pool_checks += checks
    if not attach:
        return out
    down: dict[str, str] = {}  # backend -> why it cannot be used
    # pinned Proxmox slots first, so that an automatic choice never takes one the profile pins
    wanted = [(w, pf2, v) for _t, w, pf2, v in finals if w.entry.get("attach")]
    wanted.sort(key=lambda x: x[0].entry["attach"].get("slot") is None)
    for w, pf2, v in wanted:
        att = w.entry["attach"]
        name = str(att["backend"])
        opts = _options(att, w.settings, v, pve_node)
        # what earlier attaches of this plan take (a backend's slots) is the backend's to read
        planned = tuple(out.phases["attach"])
        req = AttachRequest(vm=str(att["vm"]), pf=pf2, vf=v, options=opts, planned=planned)
        if backend is None:
            down.setdefault(name, "not configured")
        elif name not in down:
            try:
                b = backend(name)
            except VfctlError as e:  # not configured / cannot connect
                down[name] = e.message
        if name not in down:
            try:
                acts = b.plan_attach(req)
                out.phases["attach"] += acts
                out.attach_requests.append((name, req, w.path))
                continue
            except BackendError as e:  # not answering
                down[name] = e.message
            except (UsageError, NotFoundError, RefusedError) as e:  # this request: located
                raise _located(e, prof, (*w.path, "attach")) from None
        out.needs_backend.append({"backend": name, "vm": req.vm, "reason": down[name]})
    return out


_MOVE_HINT = "a profile never forces: detach the VF where it is (vfctl detach), then apply again"


def _located(e: VfctlError, prof: Profile | None, path: Path_) -> VfctlError:
    """The backend's refusal of one attach, prefixed with where the profile asks for it."""
    where = str(prof.problem(path, "")).removesuffix(": ") if prof is not None else ""
    new = e.with_message(f"{where}: {e.message}" if where else e.message)
    if isinstance(e, RefusedError) and e.override is not None:
        new.hint = _MOVE_HINT
    return new


def _final(v: VF, w: VFWant, pf: PF, ident: str) -> VF:
    """The VF as it will be after the host phases (what the backend should see)."""
    drv = _driver(w)
    if drv == DEFAULT_DRIVER:
        v = dataclasses.replace(v, driver_override=None)
    elif drv is not None:
        v = dataclasses.replace(v, driver=drv, driver_override=drv)
    mac = w.settings.mac  # validated: lower case, colons
    if mac is not None:
        mac = vfsettings.auto_mac(ident, pf.address, v.index) if mac == "auto" else mac
        v = dataclasses.replace(v, settings=dataclasses.replace(v.settings, mac=mac))
    return v


def _options(
    att: Mapping[str, Any], want: vfattrs.Desired, v: VF, pve_node: str | None
) -> dict[str, Any]:
    """AttachRequest options, named as the CLI's ``attach`` command passes them.

    libvirt ``interface`` mode carries the profile's own ``mac-address``/``vlan-id`` (libvirt
    programs them at every domain start); keys the profile leaves out are not compared.
    """
    if att["backend"] == "libvirt":
        mode = att.get("mode", "hostdev")
        opts: dict[str, Any] = {"mode": mode, "managed": att.get("managed")}
        if mode == "interface":
            opts["mac"] = v.settings.mac if want.mac is not None else None
            opts["vlan"] = want.vlan
        return opts
    return {
        "pcie": att.get("pcie"),
        "rombar": att.get("rombar"),
        "mapping": att.get("mapping"),
        "driver_keep": bool(att.get("driver-keep")),
        "slot": att.get("slot"),
        "pve_node": pve_node,
    }


# ---------------------------------------------------------------- verify


def verify(
    model: HostModel,
    targets: Sequence[Target],
    p: Plan,
    backend: Callable[[str], Backend] | None,
) -> None:
    """The re-discovered model vs the profile; any difference the host reports is an error."""
    ident = model.host_id
    bad: list[str] = []
    pfs = {q.address: q for q in model.pfs}
    for t in targets:
        q = pfs.get(t.pf.address)
        if q is None:
            bad.append(f"{t.pf.address} is gone")
            continue
        name = q.netdev or q.address
        if t.total_vfs is not None and (q.num_vfs != t.total_vfs or len(q.vfs) != t.total_vfs):
            bad.append(f"{name}: {q.num_vfs} VFs ({len(q.vfs)} links), wanted {t.total_vfs}")
        if t.autoprobe is not None and q.autoprobe not in (None, t.autoprobe):
            bad.append(f"{name}: drivers-autoprobe is {q.autoprobe}, wanted {t.autoprobe}")
        for w in t.vfs:
            v = q.vf(w.index)
            if v is None:
                bad.append(f"{name} VF {w.index} is missing")
                continue
            drv = _driver(w)
            if drv == DEFAULT_DRIVER and v.driver_override is not None:
                bad.append(f"{v.address}: driver_override is {v.driver_override}, wanted none")
            elif drv not in (None, DEFAULT_DRIVER) and v.driver != drv:
                bad.append(f"{v.address}: driver {v.driver or 'none'}, wanted {drv}")
            want = _want_settings(w, q, ident)
            for k, val in want.items():
                have = vfattrs.shown(k, getattr(v.settings, k))
                if have is not None and not vfattrs.same(k, have, val):
                    bad.append(f"{name} VF {w.index}: {k} is {have}, wanted {val}")
    for check in p.pool_checks:
        bad += check(model)
    if backend is not None:
        for bname, req, _path in p.attach_requests:
            again = backend(bname).plan_attach(req)
            if again:
                bad.append(f"{req.vf.address}: still not in VM {req.vm} ({bname})")
    if bad:
        raise HostError("verify failed: " + "; ".join(bad))


def _want_settings(w: VFWant, pf: PF, ident: str) -> dict[str, Any]:
    """The settings the entry sets, spelled as export spells them (``mac: auto`` resolved)."""
    out = {k: vfattrs.shown(k, v) for k, v in w.settings.given().items()}
    if out.get("mac") == "auto":
        out["mac"] = vfsettings.auto_mac(ident, pf.address, w.index)
    return out


# ---------------------------------------------------------------- diff and export


def _current_entry(v: VF | None, keys: Sequence[str]) -> dict[str, Any]:
    if v is None:
        return {k: None for k in keys}
    s = profile_export.export_settings(v.settings)
    out: dict[str, Any] = {}
    for k in keys:
        if k == "driver":
            out[k] = v.driver_override or (DEFAULT_DRIVER if v.driver else None)
        elif k == "attach":
            out[k] = profile_export.export_attach(v)
        else:
            out[k] = s.get(k)
    return out


def diff_views(targets: Sequence[Target], ident: str) -> tuple[str, str]:
    """(before, after) YAML of exactly the keys the profile sets, for --diff.

    ``ident``: the host's identity (``HostModel.host_id``), for ``mac-address: auto``.
    """
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for t in targets:
        b: dict[str, Any] = {"pf": t.pf.netdev or t.pf.address}
        a: dict[str, Any] = dict(b)
        if t.total_vfs is not None:
            b["total-vfs"], a["total-vfs"] = t.pf.num_vfs, t.total_vfs
        if t.autoprobe is not None:
            b["drivers-autoprobe"], a["drivers-autoprobe"] = t.pf.autoprobe, t.autoprobe
        bv, av = [], []
        for w in t.vfs:
            keys = [k for k in w.entry if k != "id"]
            want = dict(w.entry)
            if want.get("mac-address") == "auto":
                want["mac-address"] = vfsettings.auto_mac(ident, t.pf.address, w.index)
            if "attach" in want:
                want["attach"] = _diff_attach(want["attach"])
            bv.append({"id": w.index, **_current_entry(t.pf.vf(w.index), keys)})
            av.append({"id": w.index, **{k: want[k] for k in keys}})
        if bv:
            b["vfs"], a["vfs"] = bv, av
        before.append(b)
        after.append(a)
    return _yaml(before), _yaml(after)


def _diff_attach(att: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``attach`` the host can report, spelled as export spells them."""
    vm = str(att["vm"])
    if att["backend"] == "proxmox" and vm.lower().removeprefix("vm").isdigit():
        vm = f"vm{int(vm.lower().removeprefix('vm'))}"
    out: dict[str, Any] = {"vm": vm, "backend": att["backend"]}
    if att["backend"] == "libvirt":
        out["mode"] = att.get("mode", "hostdev")
    return out


def _yaml(x: Any) -> str:
    return yaml.safe_dump(x, sort_keys=False, default_flow_style=False)


def unified(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), f"{name} (host)", f"{name} (profile)"
        )
    )


# the comparisons drift.py makes are the ones verify and --diff make: one normalisation
want_settings = _want_settings
want_driver = _driver
current_attach = profile_export.export_attach
want_attach = _diff_attach
