"""`vfctl pool …` and `attach/detach VM --pool NAME`: parse, call, render (logic in vfctl.pools)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import typer

from vfctl.cli_app import app, guarded, run_plan, session
from vfctl.cli_opts import CheckOpt, ForceOpt, JsonOpt, PfArg, WaitOpt, onoff
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


def _use_backend(name: str | None) -> None:
    """A command's own --backend is also the one the inventory asks (held_by, attached_to)."""
    if name is not None:
        if name not in ("libvirt", "proxmox"):
            raise UsageError(f"invalid --backend {name!r}: libvirt or proxmox")
        session().use_backend(name)


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
        out = session().backend_report(None if pl is None else pl.be)
        if pl is not None and pl.warnings:
            out["backend_warnings"] = list(
                dict.fromkeys([*out.get("backend_warnings", []), *pl.warnings])
            )
        return out

    return get


def _verify(h: Any, addresses: list[str], settings: Any, pf: PF) -> Callable[[HostModel], None]:
    def check(m: HostModel) -> None:
        from vfctl import pools
        from vfctl.errors import HostError

        now = {v.address: v for p in m.pfs for v in p.vfs}
        bad = []
        for a in addresses:
            v = now.get(a)
            d = pools.drift(v, settings, m.host_id, pf.address) if v else ("gone",)
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

    def build(m: HostModel) -> tuple[list[Any], Callable[[HostModel], None] | None]:
        h = session().host()
        pl = state["pools"] = session().pool_backend(backend)
        views = pl.views()
        view = _find(views, name)
        if view is None and verb != "create":
            raise NotFoundError(f"no vfctl pool {name!r} ({pl.name})")
        p = resolve_pf(m, pf, h) if pf else pool_pf(view, m)
        cur = [v for v in p.vfs if view is not None and v.address in view.members]
        if view is not None:
            pools.check_same_pf(view, m, p)
        if pl.name == "libvirt" and p.netdev and verb in ("create", "add"):
            li = m.inuse.link(p.netdev)  # read at discovery with the other in-use facts
            if li is not None and not li.up:
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
        acts = [] if verb == "remove" else pools.plan_members(m, p, members, s)
        acts += pl.plan_put(name, p, members, s, create=verb == "create")
        # remove plans no host action: drift on the members that stay is for show/sync
        return acts, (None if verb == "remove" else _verify(h, addrs, s, p))

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
                trust=onoff(trust, "--trust"),
                spoofchk=onoff(spoofchk, "--spoofchk"),
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

        def build(m: HostModel) -> tuple[list[Any], Callable[[HostModel], None] | None]:
            pl = state["pools"] = session().pool_backend(backend)
            acts: list[Any] = []
            for view in pl.views():
                if not view.members:
                    continue
                p = pool_pf(view, m)
                members = [v for v in p.vfs if v.address in view.members]
                acts += pools.plan_members(m, p, members, view.settings)
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

        def build(m: HostModel) -> tuple[list[Any], Callable[[HostModel], None] | None]:
            pl = state["pools"] = session().pool_backend(backend)
            return pl.plan_delete(name, force), None

        run_plan(json_, check, wait, build, extra_fn=_extra(state))

    guarded(json_, True, go)


# ---------------------------------------------------------------- attach / detach --pool


def attach_pool(
    verb: str, vm: str, name: str, options: dict[str, Any], check: bool, json_: bool, wait: float
) -> None:
    """`attach VM --pool NAME` / `detach VM --pool NAME` through the same engine."""
    from vfctl import pools

    pools.check_name(name)
    state: dict[str, Any] = {}

    def build(m: HostModel) -> tuple[list[Any], Callable[[HostModel], None] | None]:
        pl = state["pools"] = session().pool_backend(None)
        acts = (
            pl.plan_attach(vm, name, options)
            if verb == "attach"
            else pl.plan_detach(vm, name, options)
        )
        return acts, None

    run_plan(json_, check, wait, build, extra_fn=_extra(state))
