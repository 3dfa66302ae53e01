"""Profiles' ``pools:`` and ``attach:`` sections: checks, planning, export (docs/pools.md).

A pool entry is planned like ``vfctl pool create`` (members' settings, vfio-pci, the VM
manager's object) after the PF phases, against the VFs those phases leave (predicted when the
profile changes the PF's VF count); ``attach: [{vm, pool}]`` like ``attach VM --pool``.
``export`` writes what the VM managers hold back in the same shape, so ``export | apply -``
plans nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vfctl import pools, vfattrs
from vfctl.errors import BackendError, NotFoundError, RefusedError, UsageError, VfctlError
from vfctl.host.sysfs import Host
from vfctl.model import PF, HostModel
from vfctl.profile_doc import MAX_VF_ID, Path_, Problem, Profile, ProfileInvalid, vf_bounds
from vfctl.profile_resolve import match_pf

if TYPE_CHECKING:
    from vfctl.backends.base import Backend
    from vfctl.backends.libvirt_pool import LibvirtPools
    from vfctl.backends.pve_pool import PvePools

_SETTINGS = tuple(
    (vfattrs.KEY_OF[f.name], f.name) for f in dataclasses.fields(pools.PoolSettings)
)  # (YAML key, setting)


def ids(spec: Any) -> list[int]:
    """A pool's ``vfs``: one id, a range, or a list of those (already bounds-checked)."""
    out: set[int] = set()
    for one in spec if isinstance(spec, list) else [spec]:
        lo, hi = vf_bounds(one)
        out.update(range(lo, min(hi, MAX_VF_ID) + 1))
    return sorted(out)


def settings_of(entry: Mapping[str, Any]) -> pools.PoolSettings:
    return pools.PoolSettings(**{attr: entry.get(key) for key, attr in _SETTINGS})


def problems(prof: Profile) -> Iterator[Problem]:
    names: dict[str, Path_] = {}
    for i, e in enumerate(prof.data.get("pools") or []):
        at: Path_ = ("pools", i)
        name = e.get("name")
        if name in names:
            line = prof.locs.get(names[name], (0, 0))[0]
            yield prof.problem((*at, "name"), f"pool {name!r} is also defined at line {line}")
        elif name is not None:
            names[name] = (*at, "name")
        for one in e["vfs"] if isinstance(e.get("vfs"), list) else [e.get("vfs")]:
            if one is None:
                continue
            lo, hi = vf_bounds(one)
            if hi < lo:
                yield prof.problem((*at, "vfs"), f"invalid range {one!r}: end before start")
            elif hi > MAX_VF_ID:
                yield prof.problem((*at, "vfs"), f"VF id {hi} is out of range (0-{MAX_VF_ID})")
        try:
            pools.validate(settings_of(e))
        except UsageError as exc:
            yield prof.problem(at, exc.message.replace("--", ""))
    seen: dict[tuple[str, str], Path_] = {}
    for i, a in enumerate(prof.data.get("attach") or []):
        at = ("attach", i)
        pool = a.get("pool")
        if pool is not None and pool not in names:
            yield prof.problem((*at, "pool"), f"no pool {pool!r} in this profile's pools")
        key = (str(a.get("vm")).lower().removeprefix("vm"), str(pool))
        if key in seen:
            line = prof.locs.get(seen[key], (0, 0))[0]
            yield prof.problem(at, f"VM {a.get('vm')} is attached to {pool} at line {line} too")
        seen.setdefault(key, at)


# ---------------------------------------------------------------- planning


def wrap(be: Backend) -> LibvirtPools | PvePools:
    """The pool side of a connected backend (same connection, same instance)."""
    from vfctl.backends.libvirt import LibvirtBackend
    from vfctl.backends.proxmox import ProxmoxBackend

    if isinstance(be, LibvirtBackend):
        from vfctl.backends.libvirt_pool import LibvirtPools

        return LibvirtPools(be)
    if isinstance(be, ProxmoxBackend):
        from vfctl.backends.pve_pool import PvePools

        return PvePools(be)
    raise UsageError(f"the {be.name} backend has no pools")


def _located(e: VfctlError, prof: Profile, path: Path_) -> VfctlError:
    where = str(prof.problem(path, "")).removesuffix(": ")
    return e.with_message(f"{where}: {e.message}")


def plan(
    model: HostModel,
    prof: Profile,
    after: Callable[[PF], PF],
    backend: Callable[[str], Any] | None,
    attach: bool,
    host: Host | None = None,
) -> tuple[list[Any], list[Any], list[dict[str, Any]], list[Callable[[HostModel], list[str]]]]:
    """(pool actions, attach actions, needs_backend, verifiers) for the two sections.

    ``after(pf)``: the PF as the profile's PF phases leave it (predicted VFs included);
    ``host``: only to match a PF by any of its netdev names (``resolve_pf``).
    """

    acts: list[Any] = []
    atts: list[Any] = []
    needs: list[dict[str, Any]] = []
    checks: list[Callable[[HostModel], list[str]]] = []
    down: dict[str, str] = {}
    problems_: list[Problem] = []
    planned: set[str] = set()  # pools this plan writes: an attach may not find them yet

    def side(name: str) -> Any:
        if backend is None:
            down.setdefault(name, "not configured")
        if name in down:
            return None
        try:
            return wrap(backend(name))  # type: ignore[misc]
        except VfctlError as e:
            down[name] = e.message
            return None

    for i, e in enumerate(prof.data.get("pools") or []):
        at: Path_ = ("pools", i)
        try:
            pf = after(match_pf(model, e["match"], host))
        except (NotFoundError, UsageError) as exc:
            problems_.append(prof.problem((*at, "match"), f"unknown PF: {exc.message}"))
            continue
        try:
            vfs = pools.select(pf, ids(e["vfs"]))
            s = pools.validate(settings_of(e))
            acts += pools.plan_members(model, pf, vfs, s)
            pl = side(e["backend"]) if attach else None
            if pl is not None:
                pools.in_other_pool(pl.claimed(pf), e["name"], [v.address for v in vfs])
                put = pl.plan_put(e["name"], pf, vfs, s, create=True)
                acts += put
                if put:
                    planned.add(e["name"])
        except BackendError as exc:
            down[e["backend"]] = exc.message
        except (NotFoundError, UsageError, RefusedError) as exc:
            raise _located(exc, prof, at) from None
        if attach and e["backend"] in down:
            needs.append({"backend": e["backend"], "pool": e["name"], "reason": down[e["backend"]]})
        checks.append(_member_check(pf.address, [v.address for v in vfs], s))
    if problems_:
        raise ProfileInvalid(problems_)
    backend_of = {e["name"]: e["backend"] for e in prof.data.get("pools") or []}
    for i, a in enumerate(prof.data.get("attach") or [] if attach else []):
        name = backend_of[a["pool"]]
        pl = side(name)
        if pl is None:
            needs.append({"backend": name, "vm": str(a["vm"]), "reason": down[name]})
            continue
        opts = {
            "pcie": a.get("pcie"),
            "mac": (a.get("mac-address") or "").lower().replace("-", ":") or None,
            "planned": a["pool"] in planned,
        }
        try:
            atts += pl.plan_attach(str(a["vm"]), a["pool"], opts)
        except BackendError as exc:
            needs.append({"backend": name, "vm": str(a["vm"]), "reason": exc.message})
        except (NotFoundError, UsageError, RefusedError) as exc:
            raise _located(exc, prof, ("attach", i)) from None
    return acts, atts, needs, checks


def _member_check(
    pf_address: str, addresses: list[str], s: pools.PoolSettings
) -> Callable[[HostModel], list[str]]:
    def check(m: HostModel) -> list[str]:
        now = {v.address: v for p in m.pfs for v in p.vfs}
        bad = []
        for a in addresses:
            v = now.get(a)
            d = pools.drift(v, s, m.host_id, pf_address) if v else ("gone",)
            bad += [f"{a}: {x}" for x in d]
        return bad

    return check


# ---------------------------------------------------------------- export


def _spans(idx: Sequence[int]) -> list[int | str]:
    out: list[int | str] = []
    run: list[int] = []
    for i in [*sorted(idx), None]:
        if run and (i is None or i != run[-1] + 1):
            out.append(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = []
        if i is not None:
            run.append(i)
    return out


def export(
    views: Sequence[Any], model: HostModel
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pools, attach) sections for the pools the VM managers hold with members on this host."""
    by_addr = {v.address: (p, v) for p in model.pfs for v in p.vfs}
    out_pools: list[dict[str, Any]] = []
    out_att: list[dict[str, Any]] = []
    for view in views:
        found = [by_addr[a] for a in view.members if a in by_addr]
        if not found:
            continue
        pf = found[0][0]
        e: dict[str, Any] = {"name": view.name, "backend": view.backend,
                             "match": {"pci": pf.address}}  # fmt: skip
        spans = _spans([v.index for p, v in found if p.address == pf.address])
        e["vfs"] = spans[0] if len(spans) == 1 else spans
        for key, attr in _SETTINGS:
            val = getattr(view.settings, attr)
            if val is not None:
                e[key] = val
        out_pools.append(e)
        out_att += [{"vm": vm, "pool": view.name} for vm in view.vms]
    return out_pools, out_att


def member_addresses(views: Sequence[Any]) -> set[str]:
    return {a for v in views for a in v.members}
