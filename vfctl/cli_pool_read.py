"""`vfctl pool list/show` and the pool checks of `vfctl doctor` (read-only)."""

from __future__ import annotations

from typing import Any, Optional

from vfctl.cli_app import guarded, session
from vfctl.cli_opts import JsonOpt
from vfctl.cli_pool import BackendOpt, NameArg, _find, _use_backend, pool_app
from vfctl.errors import NotFoundError
from vfctl.model import HostModel
from vfctl.session import Session

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
    _use_backend(backend)
    s = session()
    m = s.model(lenient=False)
    return s.pool_backend(backend).views(), m, m.host_id


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


def doctor_checks(s: Session, m: HostModel) -> list[Any]:
    """Stale pool entries (``vfctl doctor``): only when a VM manager is configured here."""
    from vfctl import pools
    from vfctl.doctor import FAIL, INFO, OK, Check
    from vfctl.errors import VfctlError

    out: list[Any] = []
    try:
        found = s.detected()
    except VfctlError:
        return out
    for name in found:
        try:
            views = s.pool_backend(name).views()
        except VfctlError as e:
            out.append(Check("pools", INFO, f"{name} pools not checked: {e.message}"))
            continue
        for view in views:
            sub = {a: _subsystem(s.host(), a) for a in view.members}
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
