"""attach and detach (a VF in a VM), and recover (a killed run's journal may name VMs too);
registered in order by vfctl.cli."""

from typing import Any, Optional

import typer

from vfctl.cli_app import guarded, run_plan, session
from vfctl.cli_opts import CheckOpt, ForceOpt, JsonOpt, PfArg, VfArg, VmArg, WaitOpt, onoff
from vfctl.errors import UsageError
from vfctl.model import HostModel


def _attach_cmd(
    verb: str,
    vm: str,
    pf: str,
    vf: str,
    options: dict[str, Any],
    force: bool,
    check: bool,
    json_: bool,
    wait: float,
) -> None:
    from vfctl.backends.base import AttachRequest
    from vfctl.discover import parse_vf_selector, resolve_pf

    s = session()
    state: dict[str, Any] = {}

    def build(m: HostModel) -> tuple[list[Any], None]:
        b = s.backend(s.chosen())
        h = s.host()
        p = resolve_pf(m, pf, h)
        if vf.strip().lower() == "any" and verb == "attach":
            from vfctl import pools

            v = pools.lowest_free(m, p, set(s.pool_backend(b.name).claimed(p)))
        else:
            idx = parse_vf_selector(vf, p)
            if len(idx) != 1:
                raise UsageError(f"vfctl {verb} takes one VF, got {vf!r}")
            found = p.vf(idx[0])
            assert found is not None
            v = found
        req = AttachRequest(vm=vm, pf=p, vf=v, force=force, options=options)
        acts = b.plan_attach(req) if verb == "attach" else b.plan_detach(req)
        state["backend"] = b
        return acts, None

    run_plan(json_, check, wait, build, extra_fn=lambda: s.backend_report(state.get("backend")))


def attach(
    vm: str = VmArg(),
    pf: Optional[str] = PfArg(None),
    vf: Optional[str] = typer.Argument(None, help="VF: vf3, 3, its PCI address, or any."),
    pool: Optional[str] = typer.Option(None, "--pool", help="A VF of this vfctl pool instead."),
    mode: str = typer.Option("hostdev", "--mode", help="libvirt: hostdev or interface."),
    live: bool = typer.Option(False, "--live", help="libvirt: the running domain only."),
    config: bool = typer.Option(False, "--config", help="libvirt: persistent config only."),
    mac: Optional[str] = typer.Option(None, "--mac", help="libvirt interface mode: MAC."),
    vlan: Optional[int] = typer.Option(None, "--vlan", help="libvirt interface mode: VLAN."),
    managed: Optional[str] = typer.Option(
        None, "--managed", help="libvirt: yes or no (default: decided)."
    ),
    pcie: Optional[bool] = typer.Option(None, "--pcie/--no-pcie", help="Proxmox: pcie=1."),
    rombar: Optional[str] = typer.Option(None, "--rombar", help="Proxmox: on or off."),
    mapping: Optional[str] = typer.Option(None, "--mapping", help="Proxmox: mapping id."),
    driver_keep: bool = typer.Option(False, "--driver-keep", help="Proxmox: driver=keep."),
    force: bool = ForceOpt(False),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Attach a VF to a VM (libvirt <hostdev>/<interface>, or Proxmox hostpciN)."""

    def go() -> None:
        if mapping is not None:  # checked before any VM manager is asked
            from vfctl.backends.pve_hostpci import check_mapping_id

            check_mapping_id(mapping)
        if mode not in ("hostdev", "interface"):
            raise UsageError(f"invalid --mode {mode!r}: hostdev or interface")
        if vlan is not None and not 0 <= vlan <= 4094:
            raise UsageError(f"invalid --vlan {vlan}: must be 0-4094")
        if mac is not None:
            from vfctl import vfsettings

            vfsettings.validate(vfsettings.Desired(mac=mac))
        opts = {
            "mode": mode,
            "live": live or None,
            "config": config or None,
            "mac": mac,
            "vlan": vlan,
            "managed": onoff(managed, "--managed"),
            "pcie": pcie,
            "rombar": onoff(rombar, "--rombar"),
            "mapping": mapping,
            "driver_keep": driver_keep,
            "pve_node": session().opts.pve_node,
        }
        if live and config:
            opts["live"], opts["config"] = True, True
        if pool is not None or pf is None or vf is None:
            _pool_verb("attach", vm, pf, vf, pool, opts, check, json_, wait)
            return
        _attach_cmd("attach", vm, pf, vf, opts, force, check, json_, wait)

    guarded(json_, True, go)


def _pool_verb(
    verb: str,
    vm: str,
    pf: str | None,
    vf: str | None,
    pool: str | None,
    opts: dict[str, Any],
    check: bool,
    json_: bool,
    wait: float,
) -> None:
    if pool is None:
        raise UsageError(f"vfctl {verb} needs PF and VF, or --pool NAME")
    if pf is not None or vf is not None:
        raise UsageError(f"vfctl {verb} --pool takes no PF or VF (the VM manager picks the VF)")
    from vfctl import cli_pool

    cli_pool.attach_pool(verb, vm, pool, opts, check, json_, wait)


def detach(
    vm: str = VmArg(),
    pf: Optional[str] = PfArg(None),
    vf: Optional[str] = VfArg(None),
    pool: Optional[str] = typer.Option(None, "--pool", help="The interface/slot of this pool."),
    mapping: Optional[str] = typer.Option(
        None, "--mapping", help="Proxmox: take the VM out of this multi-entry mapping (a pool)."
    ),
    live: bool = typer.Option(False, "--live", help="libvirt: the running domain only."),
    config: bool = typer.Option(False, "--config", help="libvirt: persistent config only."),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Detach a VF from a VM (the exact element that holds it)."""
    opts = {
        "live": live or None,
        "config": config or None,
        "pve_node": session().opts.pve_node,
        "mapping": mapping,
    }

    def go() -> None:
        if pool is not None or pf is None or vf is None:
            _pool_verb("detach", vm, pf, vf, pool, opts, check, json_, wait)
            return
        _attach_cmd("detach", vm, pf, vf, opts, False, check, json_, wait)

    guarded(json_, True, go)


def recover(json_: bool = JsonOpt(False), wait: float = WaitOpt(30.0)) -> None:
    """Roll back what an interrupted run did, from its journal; verify the host is as before."""
    from vfctl import plan, render, runflow

    def go() -> None:
        from vfctl.inputs import seconds

        seconds(wait, "--wait")
        res = runflow.recover(session(), wait)
        if not json_:
            if not res.rolled_back and res.error is None:
                render.out.print("no interrupted run to recover")
            for a in res.rolled_back:
                render.out.print(f"rolled back: {a.target} ({a.detail})", markup=False)
        if res.error is not None:
            raise plan.ExecutionFailed(res)  # one JSON document: the envelope with the error
        if json_:
            render.emit_json(res.to_json())

    guarded(json_, True, go)
