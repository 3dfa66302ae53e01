"""Host commands: enable, disable, bind, unbind, set (registered in order by vfctl.cli)."""

from collections.abc import Callable
from typing import Any, Optional

import typer

from vfctl.cli_app import guarded, run_plan, session
from vfctl.cli_opts import (
    CheckOpt,
    ConfirmOpt,
    ForceHostNicOpt,
    ForceOpt,
    JsonOpt,
    VfOpt,
    WaitOpt,
    onoff,
)
from vfctl.errors import UsageError
from vfctl.model import HostModel

Verify = Callable[[HostModel], None]


def enable(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    count: int = typer.Argument(..., help="Number of VFs."),
    autoprobe: Optional[bool] = typer.Option(
        None, "--autoprobe/--no-autoprobe", help="Set sriov_drivers_autoprobe first."
    ),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for VFs."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = ForceHostNicOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
    confirm: Optional[float] = ConfirmOpt(),
) -> None:
    """Create COUNT VFs on a PF (through 0 when it already has a different count)."""
    _numvfs_cmd(pf, count, autoprobe, timeout, force, force_host_nic, check, json_, wait, confirm)


def disable(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = ForceHostNicOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Remove all VFs of a PF (refused while they are in use)."""
    _numvfs_cmd(pf, 0, None, None, force, force_host_nic, check, json_, wait)


def _numvfs_cmd(
    pf: str,
    count: int,
    autoprobe: bool | None,
    timeout: float | None,
    force: bool,
    force_host_nic: bool,
    check: bool,
    json_: bool,
    wait: float,
    confirm: float | None = None,
) -> None:
    from vfctl import plan_host
    from vfctl.discover import resolve_pf

    def build(m: HostModel) -> tuple[list[Any], Verify]:
        from vfctl.inputs import seconds

        seconds(timeout, "--timeout")
        p = resolve_pf(m, pf, session().host())
        acts = plan_host.plan_numvfs(
            m, p, count, force=force, force_host_nic=force_host_nic, timeout=timeout,
            autoprobe=autoprobe,
        )  # fmt: skip
        return acts, lambda new: plan_host.verify_numvfs(new, p.address, count)

    run_plan(json_, check, wait, build, confirm=confirm)


def _bind_cmd(
    pf: str,
    vfs: list[str],
    driver: str | None,
    force: bool,
    check: bool,
    json_: bool,
    wait: float,
    confirm: float | None = None,
    force_host_nic: bool = False,
) -> None:
    from vfctl import ops_host, plan_host
    from vfctl.discover import parse_vf_selector, resolve_pf

    if driver is not None:
        from vfctl.inputs import driver_name

        driver_name(driver, "--driver")
    notes: list[str] = []

    def build(m: HostModel) -> tuple[list[Any], Verify]:
        h = session().host()
        p = resolve_pf(m, pf, h)
        idx = sorted({i for sel in vfs for i in parse_vf_selector(sel, p)})
        chosen = [v for v in p.vfs if v.index in idx]
        acts = plan_host.plan_bind(m, p, chosen, driver, force=force, force_host_nic=force_host_nic)
        if acts and driver is not None:  # load its module, or refuse (exit 2) before any write
            notes.extend(ops_host.ensure_driver(h, driver, check))
        addrs = [v.address for v in chosen]
        return acts, lambda new: plan_host.verify_driver(new, addrs, driver)

    run_plan(json_, check, wait, build, with_devices=True, confirm=confirm, plan_warnings=notes)


def bind(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    vfs: list[str] = typer.Argument(..., help="VFs: vf3, 3, vf0-3,7, all, or addresses."),
    driver: str = typer.Option("vfio-pci", "--driver", help="Driver to bind."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = ForceHostNicOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
    confirm: Optional[float] = ConfirmOpt(),
) -> None:
    """Bind VFs to a driver (vfio-pci by default) via driver_override."""
    guarded(
        json_,
        True,
        lambda: _bind_cmd(pf, vfs, driver, force, check, json_, wait, confirm, force_host_nic),
    )


def unbind(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    vfs: list[str] = typer.Argument(..., help="VFs: vf3, 3, vf0-3,7, all, or addresses."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = ForceHostNicOpt(),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
) -> None:
    """Return VFs to their default driver (clear driver_override, reprobe)."""
    guarded(
        json_,
        True,
        lambda: _bind_cmd(pf, vfs, None, force, check, json_, wait, None, force_host_nic),
    )


def set_cmd(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    vf: str = typer.Argument(..., help="VF: vf3, 3, or its PCI address."),
    mac: Optional[str] = VfOpt("mac"),
    vlan: Optional[int] = VfOpt("vlan"),
    qos: Optional[int] = VfOpt("qos"),
    vlan_proto: Optional[str] = VfOpt("vlan_proto"),
    trust: Optional[str] = VfOpt("trust"),
    spoofchk: Optional[str] = VfOpt("spoofchk"),
    link_state: Optional[str] = VfOpt("link_state"),
    min_tx_rate: Optional[int] = VfOpt("min_tx_rate"),
    max_tx_rate: Optional[int] = VfOpt("max_tx_rate"),
    query_rss: Optional[str] = VfOpt("query_rss"),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
    confirm: Optional[float] = ConfirmOpt(),
) -> None:
    """Set a VF's MAC, VLAN, trust, spoof-check, link state or rates (netlink, via the PF)."""
    from vfctl import vfsettings
    from vfctl.discover import parse_vf_selector, resolve_pf

    def build(m: HostModel) -> tuple[list[Any], Verify | None]:
        d = vfsettings.validate(
            vfsettings.Desired(
                mac=mac,
                vlan=vlan,
                qos=qos,
                vlan_proto=vlan_proto,
                spoofchk=onoff(spoofchk, "--spoofchk"),
                trust=onoff(trust, "--trust"),
                link_state=link_state,
                min_tx_rate=min_tx_rate,
                max_tx_rate=max_tx_rate,
                query_rss=onoff(query_rss, "--query-rss"),
            )
        )
        if d.empty():
            raise UsageError(
                "nothing to set: give at least one of --mac, --vlan, --qos, "
                "--trust, --spoofchk, --link-state, --min/max-tx-rate, --query-rss"
            )
        h = session().host()
        p = resolve_pf(m, pf, h)
        idx = parse_vf_selector(vf, p)
        if len(idx) != 1:
            raise UsageError(f"vfctl set takes one VF, got {vf!r}")
        v = p.vf(idx[0])
        assert v is not None
        return vfsettings.plan_set(p, v, d, ident=m.host_id), None

    guarded(json_, True, lambda: run_plan(json_, check, wait, build, confirm=confirm))
