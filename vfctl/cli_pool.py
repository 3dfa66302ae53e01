"""`vfctl pool …` and `attach/detach VM --pool NAME`: parse, call, render (logic in vfctl.pools)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import typer

from vfctl.cli import (
    CheckOpt,
    ForceOpt,
    JsonOpt,
    PfArg,
    S,
    WaitOpt,
    _backend_extra,
    _onoff,
    app,
    backend_cfg,
    guarded,
    host,
    model,
    run_plan,
)
from vfctl.errors import NotFoundError, UsageError
from vfctl.model import PF, HostModel

pool_app = typer.Typer(
    no_args_is_help=True,
    help="VF pools: a libvirt hostdev network or a Proxmox multi-entry PCI mapping.",
)
app.add_typer(pool_app, name="pool")


def NameArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="Pool name (libvirt network / PVE mapping id).")


def VfsArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="VFs: vf0-7, 0-7,9, all, or addresses.")


def BackendOpt(default: Any = None) -> Any:
    return typer.Option(default, "--backend", help="libvirt or proxmox (default: detected).")


# ---------------------------------------------------------------- plumbing


def pool_backend(h: Any, name: str | None) -> Any:
    """The pool side of the chosen backend, sharing the connection the inventory uses."""
    from vfctl import backends

    if name is not None and name not in backends.NAMES:
        raise UsageError(f"invalid --backend {name!r}: libvirt or proxmox")
    chosen = name or backends.choose(h, backend_cfg())
    key = f"backend:{chosen}"
    if key not in S.extra:
        S.extra[key] = backends.create(chosen, backend_cfg())
    if chosen == "libvirt":
        from vfctl.backends.libvirt_pool import LibvirtPools

        return LibvirtPools(S.extra[key])
    from vfctl.backends.pve_pool import PvePools

    return PvePools(S.extra[key])


def _use_backend(name: str | None) -> None:
    """A command's own --backend is also the one the inventory asks (held_by, attached_to)."""
    if name is not None:
        if name not in ("libvirt", "proxmox"):
            raise UsageError(f"invalid --backend {name!r}: libvirt or proxmox")
        S.backend = name


def pool_pf(view: Any, m: HostModel) -> PF:
    """The PF a pool's members belong to on this host."""
    for p in m.pfs:
        if view.pf == p.address or (
            view.pf is None and any(v.address in view.members for v in p.vfs)
        ):
            return p
    raise NotFoundError(f"pool {view.name} has no VF on this host; give the PF")


def _find(views: list[Any], name: str) -> Any:
    return next((v for v in views if v.name == name), None)


def _extra(state: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    def get() -> dict[str, Any]:
        pl = state.get("pools")
        out = _backend_extra({"backend": getattr(pl, "be", None)})
        if pl is not None and pl.warnings:
            out["backend_warnings"] = list(
                dict.fromkeys([*out.get("backend_warnings", []), *pl.warnings])
            )
        return out

    return get


def _verify(h: Any, addresses: list[str], settings: Any, pf: PF) -> Callable[[], None]:
    def check() -> None:
        from vfctl import pools, vfsettings
        from vfctl.errors import HostError

        m = model(h, with_backends=False)
        now = {v.address: v for p in m.pfs for v in p.vfs}
        bad = []
        for a in addresses:
            v = now.get(a)
            d = pools.drift(v, settings, vfsettings.host_id(h), pf.address) if v else ("gone",)
            bad += [f"{a}: {x}" for x in d]
        if bad:
            raise HostError("verify failed: " + "; ".join(bad))

    return check


# ---------------------------------------------------------------- create / add / remove / sync


def _put(
    verb: str,
    name: str,
    pf: str | None,
    vfs: str | None,
    given: Any,
    backend: str | None,
    check: bool,
    json_: bool,
    wait: float,
) -> None:
    from vfctl import pools
    from vfctl.discover import parse_vf_selector, resolve_pf

    pools.check_name(name)
    _use_backend(backend)
    state: dict[str, Any] = {}

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
        pl = state["pools"] = pool_backend(h, backend)
        views = pl.views()
        view = _find(views, name)
        if view is None and verb != "create":
            raise NotFoundError(f"no vfctl pool {name!r} ({pl.name})")
        p = resolve_pf(m, pf, h) if pf else pool_pf(view, m)
        cur = [v for v in p.vfs if view is not None and v.address in view.members]
        if view is not None:
            pools.check_same_pf(view, m, p)
        if pl.name == "libvirt" and p.netdev and verb in ("create", "add"):
            from vfctl.host import netlink

            if not netlink.link_info(h, p.netdev).up:
                pl.warnings.append(
                    f"{p.netdev} is down: libvirt refuses to start a domain on this pool until "
                    "the PF is up (it programs the VF through the PF)"
                )
        sel = [] if vfs is None else pools.select(p, parse_vf_selector(vfs, p))
        s = view.settings if view is not None else pools.PoolSettings()
        if verb == "create":
            members, s = sel, pools.merge(s, given)
        elif verb == "add":
            members = sorted({*cur, *sel}, key=lambda v: v.index)
        elif verb == "remove":
            members = [v for v in cur if v not in sel]
        else:
            members = cur
        if view is not None and verb != "sync":
            gone = {v.address for v in cur} - {v.address for v in members}
            pools.check_removable(view, m, gone)
        addrs = [v.address for v in members]
        pools.in_other_pool(pl.claimed(p), name, addrs)
        acts = [] if verb == "remove" else pools.plan_members(h, m, p, members, s)
        acts += pl.plan_put(name, p, members, s, create=verb == "create")
        return acts, _verify(h, addrs, s, p)

    run_plan(json_, check, wait, build, with_devices=True, extra_fn=_extra(state))


@pool_app.command("create")
def create(
    name: str = NameArg(),
    pf: str = PfArg(),
    vfs: str = VfsArg(),
    vlan: Optional[int] = typer.Option(None, "--vlan", help="VLAN id 0-4094 for every member."),
    qos: Optional[int] = typer.Option(None, "--qos", help="802.1p priority 0-7 (with --vlan)."),
    trust: Optional[str] = typer.Option(None, "--trust", help="on or off."),
    spoofchk: Optional[str] = typer.Option(None, "--spoofchk", help="on or off."),
    mac: Optional[str] = typer.Option(None, "--mac", help="auto: each VF a stable MAC."),
    max_tx_rate: Optional[int] = typer.Option(None, "--max-tx-rate", help="Mbps."),
    backend: Optional[str] = BackendOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Make VFS of PF a pool NAME: settings on the host, vfio-pci, the VM manager's pool object."""

    def go() -> None:
        from vfctl import pools

        given = pools.validate(
            pools.PoolSettings(
                vlan=vlan,
                qos=qos,
                trust=_onoff(trust, "--trust"),
                spoofchk=_onoff(spoofchk, "--spoofchk"),
                mac=mac,
                max_tx_rate=max_tx_rate,
            )
        )
        _put("create", name, pf, vfs, given, backend, check, json_, wait)

    guarded(json_, True, go)


@pool_app.command("add")
def add(
    name: str = NameArg(),
    pf: str = PfArg(),
    vfs: str = VfsArg(),
    backend: Optional[str] = BackendOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Add VFs to a pool (they get the pool's settings and vfio-pci)."""
    guarded(json_, True, lambda: _put("add", name, pf, vfs, None, backend, check, json_, wait))


@pool_app.command("remove")
def remove(
    name: str = NameArg(),
    pf: str = PfArg(),
    vfs: str = VfsArg(),
    backend: Optional[str] = BackendOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Take VFs out of a pool (refused while a running VM holds one); they stay on vfio-pci."""
    guarded(json_, True, lambda: _put("remove", name, pf, vfs, None, backend, check, json_, wait))


@pool_app.command("sync")
def sync(
    name: Optional[str] = typer.Argument(None, help="Pool (default: every vfctl pool)."),
    backend: Optional[str] = BackendOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Re-apply pool settings to members and refresh entries (IOMMU group, subsystem id)."""

    def go() -> None:
        from vfctl import pools

        if name is not None:
            _put("sync", name, None, None, None, backend, check, json_, wait)
            return
        _use_backend(backend)
        state: dict[str, Any] = {}

        def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
            pl = state["pools"] = pool_backend(h, backend)
            acts: list[Any] = []
            for view in pl.views():
                if not view.members:
                    continue
                p = pool_pf(view, m)
                members = [v for v in p.vfs if v.address in view.members]
                acts += pools.plan_members(h, m, p, members, view.settings)
                acts += pl.plan_put(view.name, p, members, view.settings, create=False)
            return acts, None

        run_plan(json_, check, wait, build, with_devices=True, extra_fn=_extra(state))

    guarded(json_, True, go)


@pool_app.command("delete")
def delete(
    name: str = NameArg(),
    backend: Optional[str] = BackendOpt(),
    force: bool = ForceOpt(False),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Delete a pool (refused while VMs reference it; --force detaches stopped ones first)."""

    def go() -> None:
        from vfctl import pools

        pools.check_name(name)
        _use_backend(backend)
        state: dict[str, Any] = {}

        def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
            pl = state["pools"] = pool_backend(h, backend)
            return pl.plan_delete(name, force), None

        run_plan(json_, check, wait, build, extra_fn=_extra(state))

    guarded(json_, True, go)


# ---------------------------------------------------------------- list / show


def _doc(view: Any, m: HostModel, ident: str) -> dict[str, Any]:
    from vfctl import pools

    states = pools.member_states(view, m, ident)
    pf = next((p for p in m.pfs if any(v.address in view.members for v in p.vfs)), None)
    return {
        "name": view.name,
        "backend": view.backend,
        "pf": pf.address if pf else view.pf,
        "pf_netdev": pf.netdev if pf else None,
        "settings": view.settings.to_json(),
        "members": [s.to_json() for s in states],
        "free": sum(1 for s in states if s.state == "free"),
        "vms": list(view.vms),
        "other_nodes": dict(view.elsewhere),
        "active": view.active,
    }


def _views(backend: str | None) -> tuple[list[Any], HostModel, str]:
    from vfctl import vfsettings

    _use_backend(backend)
    h = host()
    m = model(h, lenient=False)
    return pool_backend(h, backend).views(), m, vfsettings.host_id(h)


@pool_app.command("list")
def list_cmd(backend: Optional[str] = BackendOpt(), json_: bool = JsonOpt(False)) -> None:
    """List vfctl's pools: members free/held, referencing VMs."""

    def go() -> None:
        from vfctl import render

        views, m, ident = _views(backend)
        docs = [_doc(v, m, ident) for v in views]
        if json_:
            render.emit_json({"pools": docs})
            return
        if not docs:
            render.out.print("no vfctl pools")
            return
        from rich.markup import escape
        from rich.table import Table

        t = Table(title="vfctl pools", title_justify="left")
        for c in ("pool", "backend", "PF", "members", "free", "settings", "VMs"):
            t.add_column(c)
        for d in docs:
            t.add_row(*(escape(str(x)) for x in (
                d["name"], d["backend"], d["pf_netdev"] or d["pf"] or "-", len(d["members"]),
                d["free"], _settings_text(d["settings"]), ", ".join(d["vms"]) or "-",
            )))  # fmt: skip
        render.out.print(t)

    guarded(json_, False, go)


def _settings_text(s: dict[str, Any]) -> str:
    shown = [
        f"{k}={'on' if v is True else 'off' if v is False else v}"
        for k, v in s.items()
        if v is not None
    ]
    return ",".join(shown) or "-"


@pool_app.command("show")
def show(
    name: str = NameArg(), backend: Optional[str] = BackendOpt(), json_: bool = JsonOpt(False)
) -> None:
    """One pool: each member's state (free, reserved, held by which VM) and settings drift."""

    def go() -> None:
        from rich.markup import escape
        from rich.table import Table

        from vfctl import render

        views, m, ident = _views(backend)
        view = _find(views, name)
        if view is None:
            raise NotFoundError(f"no vfctl pool {name!r}")
        d = _doc(view, m, ident)
        if json_:
            render.emit_json(d)
            return
        render.out.print(
            escape(f"pool {d['name']} ({d['backend']}), PF {d['pf_netdev'] or d['pf'] or '-'}, "
                   f"settings {_settings_text(d['settings'])}, VMs {', '.join(d['vms']) or '-'}")
        )  # fmt: skip
        for node, n in sorted(d["other_nodes"].items()):
            render.out.print(escape(f"node {node}: {n} entries"))
        t = Table()
        for c in ("VF", "address", "state", "held by", "drift"):
            t.add_column(c)
        for mem in d["members"]:
            t.add_row(*(escape(str(x)) for x in (
                "-" if mem["vf"] is None else f"vf{mem['vf']}", mem["address"], mem["state"],
                mem["held_by"] or "-", "; ".join(mem["drift"]) or "-",
            )))  # fmt: skip
        render.out.print(t)

    guarded(json_, False, go)


# ---------------------------------------------------------------- attach / detach --pool


def attach_pool(
    verb: str, vm: str, name: str, options: dict[str, Any], check: bool, json_: bool, wait: float
) -> None:
    """`attach VM --pool NAME` / `detach VM --pool NAME` through the same engine."""
    from vfctl import pools

    pools.check_name(name)
    state: dict[str, Any] = {}

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
        pl = state["pools"] = pool_backend(h, None)
        acts = (
            pl.plan_attach(vm, name, options)
            if verb == "attach"
            else pl.plan_detach(vm, name, options)
        )
        return acts, None

    run_plan(json_, check, wait, build, extra_fn=_extra(state))


def pooled_addresses(h: Any, b: Any, pf: PF) -> set[str]:
    """Addresses any pool hands out (vfctl's or not): ``attach VM PF any`` never takes those."""
    return set(pool_backend(h, b.name).claimed(pf))


def doctor_checks(h: Any, m: HostModel) -> list[Any]:
    """Stale pool entries (``vfctl doctor``): only when a VM manager is configured here."""
    from vfctl import backends, pools
    from vfctl.doctor import FAIL, INFO, OK, Check
    from vfctl.errors import VfctlError

    out: list[Any] = []
    try:
        found = backends.detect(h, backend_cfg())
    except VfctlError:
        return out
    for name in found:
        try:
            views = pool_backend(h, name).views()
        except VfctlError as e:
            out.append(Check("pools", INFO, f"{name} pools not checked: {e.message}"))
            continue
        for view in views:
            sub = {a: _subsystem(h, a) for a in view.members}
            bad = pools.stale(view, m, sub)
            for addr, why in bad:
                out.append(Check(
                    "pool entries", FAIL, f"{name} pool {view.name}: {addr}: {why}",
                    remedy=f"vfctl pool sync {view.name} (or pool remove it)", target=addr,
                ))  # fmt: skip
            if not bad:
                out.append(Check("pool entries", OK, f"{name} pool {view.name}: "
                                 f"{len(view.members)} entries match the hardware"))  # fmt: skip
    return out


def _subsystem(h: Any, addr: str) -> str | None:
    sv = h.read_opt(f"sys/bus/pci/devices/{addr}/subsystem_vendor")
    sd = h.read_opt(f"sys/bus/pci/devices/{addr}/subsystem_device")
    if not sv or not sd:
        return None
    return f"{sv.lower().removeprefix('0x'):0>4}:{sd.lower().removeprefix('0x'):0>4}"
