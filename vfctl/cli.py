"""The typer app: parse, call, render. Decisions live in the modules it calls."""

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from vfctl import __version__, vfattrs
from vfctl.errors import NotFoundError, RefusedError, UsageError, VfctlError
from vfctl.model import HostModel

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="SR-IOV virtual functions for Proxmox VE and libvirt/KVM hosts.",
    context_settings={"help_option_names": ["-h", "--help"]},
    # a bug's traceback must not print local variables: one of them may hold the PVE secret
    pretty_exceptions_show_locals=False,
)
sim_app = typer.Typer(no_args_is_help=True, help="Simulated hosts: build one, snapshot a real one.")
app.add_typer(sim_app, name="sim")


@dataclass
class State:
    root: str = "/"
    verbose: int = 0
    backend: str = "auto"
    libvirt_uri: str | None = None
    pve_node: str | None = None
    pve_ca: str | None = None
    insecure: bool = False
    json: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


S = State()


def JsonOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--json", help="Print one JSON document on stdout.")


def CheckOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--check", help="Show the plan; change nothing.")


def VfOpt(name: str) -> Any:
    """``vfctl set``'s option for one VF setting: flag and help from its row in vfattrs."""
    a = vfattrs.ATTR[name]
    return typer.Option(None, a.option, help=a.help)


def ForceOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--force", help="Override in-use refusals.")


def WaitOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--wait", help="Seconds to wait for the host lock.")


def ConfirmOpt() -> Any:
    return typer.Option(
        None,
        "--confirm",
        metavar="SECONDS",
        help="Revert automatically unless `vfctl confirm` runs within SECONDS.",
    )


def _version(value: bool) -> None:
    if value:
        print(f"vfctl {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: str = typer.Option(
        "/", "--root", envvar="VFCTL_ROOT", help="Host root (a real / or a simulated host dir)."
    ),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True),
    backend: str = typer.Option(
        "auto", "--backend", envvar="VFCTL_BACKEND", help="auto, none, libvirt or proxmox."
    ),
    libvirt_uri: Optional[str] = typer.Option(None, "--libvirt-uri", envvar="VFCTL_LIBVIRT_URI"),
    pve_node: Optional[str] = typer.Option(None, "--pve-node", envvar="VFCTL_PVE_NODE"),
    pve_ca: Optional[str] = typer.Option(None, "--pve-ca", help="CA file for the PVE API."),
    insecure: bool = typer.Option(False, "--insecure", help="Skip PVE TLS verification."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    S.root, S.verbose, S.backend = root, verbose, backend
    S.libvirt_uri, S.pve_node, S.pve_ca, S.insecure = libvirt_uri, pve_node, pve_ca, insecure


# ---------------------------------------------------------------- shared plumbing


def host() -> Any:
    from vfctl.host.sysfs import Host

    if not os.path.isdir(S.root):
        raise NotFoundError(f"host root {S.root} does not exist")
    h = Host(os.path.abspath(S.root))  # journals and messages carry absolute paths
    if S.verbose:
        from vfctl.pci import configspace

        if not getattr(configspace, "HAVE_C", False):
            print(
                "vfctl: C config-space parser not built; using the pure-Python parser",
                file=sys.stderr,
            )
    return h


def backend_cfg() -> Any:
    from vfctl.backends import BackendConfig

    return BackendConfig(
        name=S.backend,
        libvirt_uri=S.libvirt_uri,
        pve_node=S.pve_node,
        pve_ca=S.pve_ca,
        insecure=S.insecure,
        root=os.path.abspath(S.root),
    )


def inventory(h: Any, lenient: bool = False) -> dict[str, list[Any]]:
    """attached_to for every VF, from every backend this host has.

    ``lenient`` (read-only listings): a VM manager that was only auto-detected and does not
    answer costs a warning, not the listing. Mutating commands stay strict: their in-use
    checks must not pass just because the VM manager could not be asked.
    """
    from vfctl import backends

    cfg = backend_cfg()
    explicit = cfg.name != "auto" or bool(cfg.libvirt_uri)
    out: dict[str, list[Any]] = {}
    for name in backends.detect(h, cfg):
        try:
            b = S.extra.get(f"backend:{name}")
            if b is None:  # connect once per process, not once per inventory
                b = S.extra[f"backend:{name}"] = backends.create(name, cfg)
            atts_by_addr = b.attachments()
        except VfctlError as e:
            if explicit or not lenient:
                raise
            print(
                f"vfctl: warning: {name} inventory unavailable ({e.message}); "
                "attached_to is incomplete",
                file=sys.stderr,
            )
            continue
        if lenient:  # a read-only listing: what the VM manager holds that PVE would reject
            for w in getattr(b, "warnings", []):
                print(f"vfctl: warning: {w}", file=sys.stderr)
        for addr, atts in atts_by_addr.items():
            out.setdefault(addr, []).extend(atts)
    return out


def model(
    h: Any,
    with_devices: bool = False,
    with_backends: bool = True,
    lenient: bool = False,
    inuse: bool = False,
) -> HostModel:
    from vfctl.discover import discover, with_vf_info
    from vfctl.host import netlink

    inv = inventory(h, lenient) if with_backends else {}  # one round of VM-manager calls
    pooled = pool_refs() if with_backends else {}
    h.settle()  # a simulated host runs pending probes first, as a kernel would by itself
    m = discover(h, inv, with_devices=with_devices, pools=pooled, inuse=inuse)
    info = netlink.vf_info_all(h, [pf.netdev for pf in m.pfs if pf.netdev and pf.num_vfs])
    return with_vf_info(m, info) if any(info.values()) else m


def pool_refs() -> dict[str, Any]:
    """VF address -> PoolRef from the connected backends that know pools (Proxmox mappings)."""
    out: dict[str, Any] = {}
    for k, b in S.extra.items():
        if k.startswith("backend:") and hasattr(b, "pool_refs"):
            out.update(b.pool_refs())
    return out


def pf_json(p: Any, pooled: dict[str, str] | None) -> dict[str, Any]:
    """A PF's JSON; with a libvirt backend, ``hostdev_network`` on the PF and each VF."""
    doc: dict[str, Any] = p.to_json()
    if pooled is not None:
        doc["hostdev_network"] = pooled.get(p.address)
        for v in doc["vfs"]:
            v["hostdev_network"] = pooled.get(v["address"])
    return doc


def pools(m: HostModel) -> dict[str, str] | None:
    """PCI address -> hostdev network pooling it; None when no connected backend has pools."""
    found = [b for k, b in S.extra.items() if k.startswith("backend:") and hasattr(b, "pools")]
    if not found:
        return None
    out: dict[str, str] = {}
    for b in found:
        try:
            out.update(b.pools(m.pfs))
        except VfctlError as e:
            print(f"vfctl: warning: hostdev networks unavailable ({e.message})", file=sys.stderr)
    return out


def fail(e: VfctlError, as_json: bool, mutating: bool) -> None:
    from vfctl import render

    if as_json:
        if mutating:
            from vfctl.plan import ExecutionFailed

            doc = (
                e.result.to_json()
                if isinstance(e, ExecutionFailed)
                else {
                    "changed": False,
                    "actions": [],
                    "rolled_back": [],
                    "warnings": [],
                    "error": {"kind": e.kind, "message": e.message},
                }
            )
        else:
            doc = {"error": {"kind": e.kind, "message": e.message}}
        problems = getattr(e, "problems", None)  # a profile's located errors, one per problem
        if problems:
            doc["errors"] = [p.to_json() for p in problems]
        render.emit_json(doc)
    msg = "\n".join(f"vfctl: error: {line}" for line in e.message.splitlines() or [""])
    if e.hint:
        msg += f" (hint: {e.hint})"
    print(msg, file=sys.stderr)
    raise typer.Exit(e.exit_code)


def guarded(as_json: bool, mutating: bool, fn: Callable[[], None]) -> None:
    try:
        fn()
    except VfctlError as e:
        fail(e, as_json, mutating)
    except KeyboardInterrupt:
        print("vfctl: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


def run_plan(
    as_json: bool,
    check: bool,
    wait: float,
    build: Callable[[Any, HostModel], tuple[list[Any], Callable[[], None] | None]],
    with_devices: bool = False,
    extra_fn: Callable[[], dict[str, Any]] | None = None,
    *,
    confirm: float | None = None,
    detailed_exitcode: bool = False,
    record: dict[str, Any] | None = None,
    plan_warnings: list[str] | None = None,
) -> None:
    """Lock, refuse over a stale journal, discover, plan, execute, verify, record, render.

    ``confirm``: arm an automatic revert unless `vfctl confirm` runs within that many seconds;
    ``detailed_exitcode``: with --check, exit 2 when changes are pending; ``record``: extra
    fields for the history record (profile, undone run); ``plan_warnings``: what ``build``
    noted while planning, shown first among the result's warnings.
    """
    from vfctl import confirm as confirm_mod
    from vfctl import history, plan, render
    from vfctl.host.lock import host_lock

    def go() -> None:
        from vfctl.inputs import seconds

        seconds(wait, "--wait")
        if confirm is not None and not check:
            confirm_mod.check_seconds(confirm)
        h = host()
        ctx = plan.Context(
            h,
            backend_factory=_factory,
            progress=(lambda m: render.err.print(m, style="dim", markup=False))
            if S.verbose and not as_json
            else None,
        )
        ctx.interactive = not as_json and sys.stderr.isatty()
        with host_lock(h, wait):
            confirm_mod.refuse_if_pending(h)
            stale = plan.pending_journal(h)
            if stale is not None:
                raise RefusedError(
                    f"an interrupted vfctl run left a journal ({plan.Journal(h).path}) with "
                    f"{len(stale['actions'])} actions; run `vfctl recover` to roll it back"
                )
            m = model(h, with_devices=with_devices, inuse=True)  # planners need in-use facts
            actions, verify = build(h, m)
            from vfctl.discover import refuse_unsound

            refuse_unsound(m, actions)
            if check:
                res = plan.execute(ctx, actions, verify=verify, check=True)
            else:  # recorded in the history, success or failure
                fields = {"argv": sys.argv[1:], **(record or {})}
                res = history.run_recorded(
                    h,
                    m,
                    lambda: plan.execute(ctx, actions, verify=verify),
                    lambda: model(h),
                    fields,
                )
                if confirm is not None and res.changed:
                    res.extra["confirm"] = confirm_mod.arm(h, res, confirm, reverter_argv())
        if plan_warnings:
            res.warnings[:0] = [w for w in plan_warnings if w not in res.warnings]
        if extra_fn is not None:
            res.extra.update(extra_fn())
            early = [w for w in res.extra.get("backend_warnings", []) if w not in res.warnings]
            res.warnings[:0] = early  # plan-time backend warnings belong in `warnings` too
        if as_json:
            render.emit_json(res.to_json())
        else:
            render.result_text(res, check)
        if "confirm" in res.extra and not as_json:
            from vfctl.cli_ops import after_apply

            after_apply(h, res.extra["confirm"], wait)
        if detailed_exitcode and res.changed:  # pending (--check), or made (as Puppet's)
            raise _Pending(2)

    guarded(as_json, True, go)


class _Pending(typer.Exit):
    """Exit 2 from --detailed-exitcode: changes are pending (not a usage error)."""


def detailed_exit(enabled: bool, fn: Callable[[], None]) -> None:
    """With --detailed-exitcode, 2 means "changes pending": an invalid input exits 1 instead."""
    if not enabled:
        fn()
        return
    try:
        fn()
    except typer.Exit as e:
        if e.exit_code == 2 and not isinstance(e, _Pending):
            raise typer.Exit(1) from None
        raise


def reverter_argv() -> list[str]:
    """The global options a later `vfctl confirm --expire` needs to reach the same host and VMs."""
    argv = ["--root", S.root, "--backend", S.backend]
    for flag, val in (
        ("--libvirt-uri", S.libvirt_uri),
        ("--pve-node", S.pve_node),
        ("--pve-ca", S.pve_ca),
    ):
        if val:
            argv += [flag, val]
    if S.insecure:
        argv.append("--insecure")
    return argv


def _factory(name: str, params: Any) -> Any:
    from vfctl import backends

    return backends.create(name, backend_cfg(), params)


# ---------------------------------------------------------------- read-only commands


@app.command("list")
def list_cmd(
    json_: bool = JsonOpt(False),
    all_: bool = typer.Option(False, "--all", "-a", help="Include the VFs."),
) -> None:
    """List SR-IOV physical functions."""

    def go() -> None:
        from vfctl import jsontext, pciids, render

        m = pciids.named(model(host(), lenient=True))
        if json_:
            pooled = pools(m)
            if pooled is None:  # the common document: encoded without a dict per VF
                render.emit_json_text(jsontext.list_text(m.pfs))
            else:
                render.emit_json({"pfs": [pf_json(p, pooled) for p in m.pfs]})
            for p in m.pfs:
                for problem in p.problems:
                    render.warn(f"{p.address}: {problem}")
            return
        for p in m.pfs:
            for problem in p.problems:
                render.warn(f"{p.address}: {problem}")
        if not m.pfs:
            render.out.print("no SR-IOV physical functions found")
            return
        render.out.print(render.pf_table(m, all_))

    guarded(json_, False, go)


@app.command()
def show(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."), json_: bool = JsonOpt(False)
) -> None:
    """Show one PF and its VFs."""

    def go() -> None:
        from vfctl import jsontext, pciids, render
        from vfctl.discover import resolve_pf

        h = host()
        p = resolve_pf(pciids.named(model(h, lenient=True)), pf, h)
        pooled = pools(HostModel((p,)))
        for problem in p.problems:
            render.warn(f"{p.address}: {problem}")
        if json_:
            if pooled is None:
                render.emit_json_text(jsontext.pf_text(p))
            else:
                render.emit_json(pf_json(p, pooled))
            return
        render.out.print(render.pf_summary(p), markup=False)
        for note in p.notes:
            render.warn(note, "note")
        nets = sorted({n for a, n in (pooled or {}).items() if a in {v.address for v in p.vfs}})
        for net in nets:
            members = [f"vf{v.index}" for v in p.vfs if (pooled or {}).get(v.address) == net]
            render.out.print(
                f"libvirt hostdev network {net!r} pools {', '.join(members)}", markup=False
            )
        if p.vfs:
            render.out.print(render.vf_table(p))

    guarded(json_, False, go)


@app.command()
def decode(
    file: str = typer.Argument(..., help="Raw config space or lspci -x/-xxx/-xxxx dump."),
    json_: bool = JsonOpt(False),
) -> None:
    """Decode a config-space file: capabilities, SR-IOV, ARI, ACS, PCIe link."""

    def go() -> None:
        from vfctl import render
        from vfctl.host.files import read_regular
        from vfctl.pci import configspace

        raw = read_regular(file, 1 << 20, "file", missing=NotFoundError)
        try:
            data = configspace.load_dump(raw)
        except ValueError as e:
            raise UsageError(f"{file}: {e}") from None
        doc = configspace.parse(data)
        if json_:
            render.emit_json(doc)
        else:
            render.decode_text(doc)

    guarded(json_, False, go)


# ---------------------------------------------------------------- host operations


@app.command()
def enable(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    count: int = typer.Argument(..., help="Number of VFs."),
    autoprobe: Optional[bool] = typer.Option(
        None, "--autoprobe/--no-autoprobe", help="Set sriov_drivers_autoprobe first."
    ),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for VFs."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = typer.Option(False, "--force-host-nic"),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
    wait: float = WaitOpt(30.0),
    confirm: Optional[float] = ConfirmOpt(),
) -> None:
    """Create COUNT VFs on a PF (through 0 when it already has a different count)."""
    _numvfs_cmd(pf, count, autoprobe, timeout, force, force_host_nic, check, json_, wait, confirm)


@app.command()
def disable(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = typer.Option(False, "--force-host-nic"),
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
    from vfctl.discover import discover, resolve_pf

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None]]:
        from vfctl.inputs import seconds

        seconds(timeout, "--timeout")
        p = resolve_pf(m, pf, h)
        acts = plan_host.plan_numvfs(
            m, p, count, force=force, force_host_nic=force_host_nic, timeout=timeout,
            autoprobe=autoprobe,
        )  # fmt: skip
        return acts, lambda: plan_host.verify_numvfs(discover(h), p.address, count)

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
    from vfctl.discover import discover, parse_vf_selector, resolve_pf

    if driver is not None:
        from vfctl.inputs import driver_name

        driver_name(driver, "--driver")
    notes: list[str] = []

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None]]:
        p = resolve_pf(m, pf, h)
        idx = sorted({i for sel in vfs for i in parse_vf_selector(sel, p)})
        chosen = [v for v in p.vfs if v.index in idx]
        acts = plan_host.plan_bind(m, p, chosen, driver, force=force, force_host_nic=force_host_nic)
        if acts and driver is not None:  # load its module, or refuse (exit 2) before any write
            notes.extend(ops_host.ensure_driver(h, driver, check))
        addrs = [v.address for v in chosen]
        return acts, lambda: plan_host.verify_driver(discover(h), addrs, driver)

    run_plan(json_, check, wait, build, with_devices=True, confirm=confirm, plan_warnings=notes)


@app.command()
def bind(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    vfs: list[str] = typer.Argument(..., help="VFs: vf3, 3, vf0-3,7, all, or addresses."),
    driver: str = typer.Option("vfio-pci", "--driver", help="Driver to bind."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = typer.Option(False, "--force-host-nic"),
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


@app.command()
def unbind(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."),
    vfs: list[str] = typer.Argument(..., help="VFs: vf3, 3, vf0-3,7, all, or addresses."),
    force: bool = ForceOpt(False),
    force_host_nic: bool = typer.Option(False, "--force-host-nic"),
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


def _onoff(v: str | None, what: str) -> bool | None:
    if v is None:
        return None
    if v.lower() in ("on", "1", "true", "yes"):
        return True
    if v.lower() in ("off", "0", "false", "no"):
        return False
    raise UsageError(f"invalid {what} {v!r}: on or off")


@app.command("set")
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

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
        d = vfsettings.validate(
            vfsettings.Desired(
                mac=mac,
                vlan=vlan,
                qos=qos,
                vlan_proto=vlan_proto,
                spoofchk=_onoff(spoofchk, "--spoofchk"),
                trust=_onoff(trust, "--trust"),
                link_state=link_state,
                min_tx_rate=min_tx_rate,
                max_tx_rate=max_tx_rate,
                query_rss=_onoff(query_rss, "--query-rss"),
            )
        )
        if d.empty():
            raise UsageError(
                "nothing to set: give at least one of --mac, --vlan, --qos, "
                "--trust, --spoofchk, --link-state, --min/max-tx-rate, --query-rss"
            )
        p = resolve_pf(m, pf, h)
        idx = parse_vf_selector(vf, p)
        if len(idx) != 1:
            raise UsageError(f"vfctl set takes one VF, got {vf!r}")
        v = p.vf(idx[0])
        assert v is not None
        ident = vfsettings.host_id(h) if d.mac == "auto" else None
        return vfsettings.plan_set(p, v, d, ident=ident), None

    guarded(json_, True, lambda: run_plan(json_, check, wait, build, confirm=confirm))


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
    from vfctl import backends
    from vfctl.backends.base import AttachRequest
    from vfctl.discover import parse_vf_selector, resolve_pf

    state: dict[str, Any] = {}

    def build(h: Any, m: HostModel) -> tuple[list[Any], Callable[[], None] | None]:
        name = backends.choose(h, backend_cfg())
        b = S.extra.get(f"backend:{name}") or backends.create(name, backend_cfg())
        S.extra[f"backend:{name}"] = b
        p = resolve_pf(m, pf, h)
        if vf.strip().lower() == "any" and verb == "attach":
            from vfctl import cli_pool, pools

            v = pools.lowest_free(m, p, cli_pool.pooled_addresses(h, b, p))
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
        for w in getattr(b, "warnings", []):
            if w not in state.setdefault("warned", []):
                state["warned"].append(w)
        return acts, None

    run_plan(json_, check, wait, build, extra_fn=lambda: _backend_extra(state))


def _backend_extra(state: dict[str, Any]) -> dict[str, Any]:
    b = state.get("backend")
    out: dict[str, Any] = {}
    if b is not None:
        if getattr(b, "pending", None):
            out["pending"] = list(b.pending)
        if getattr(b, "warnings", None):
            out["backend_warnings"] = list(b.warnings)
        if getattr(b, "report", None):
            out["backend_report"] = list(b.report)
    return out


def VmArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="VM: libvirt name/UUID, or Proxmox 101/vm101/name.")


def PfArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="PF netdev or PCI address.")


def VfArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="VF: vf3, 3, or its PCI address.")


@app.command()
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
            "managed": _onoff(managed, "--managed"),
            "pcie": pcie,
            "rombar": _onoff(rombar, "--rombar"),
            "mapping": mapping,
            "driver_keep": driver_keep,
            "pve_node": S.pve_node,
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


@app.command()
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
        "pve_node": S.pve_node,
        "mapping": mapping,
    }

    def go() -> None:
        if pool is not None or pf is None or vf is None:
            _pool_verb("detach", vm, pf, vf, pool, opts, check, json_, wait)
            return
        _attach_cmd("detach", vm, pf, vf, opts, False, check, json_, wait)

    guarded(json_, True, go)


@app.command()
def recover(json_: bool = JsonOpt(False), wait: float = WaitOpt(30.0)) -> None:
    """Roll back what an interrupted run did, from its journal; verify the host is as before."""
    from vfctl import plan, reconnect, render
    from vfctl.host.lock import host_lock

    def go() -> None:
        from vfctl.inputs import seconds

        seconds(wait, "--wait")
        h = host()
        with host_lock(h, wait):
            cfg = backend_cfg()
            ctx = plan.Context(h, backend_factory=reconnect.factory(cfg))
            res = plan.recover(ctx, precheck=lambda data: reconnect.check(cfg, data))
            if res.error is None:  # the killed run first; then a change awaiting confirmation
                from vfctl.cli_ops import revert_pending

                reverted = revert_pending(h, "recover")
                if reverted is not None:
                    res.rolled_back[:0] = reverted.actions
                    res.changed = res.changed or reverted.changed
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


@app.command()
def doctor(
    pf: Optional[str] = typer.Argument(None, help="Check only this PF."),
    json_: bool = JsonOpt(False),
) -> None:
    """Check that this host can pass VFs to VMs: IOMMU, vfio, drivers, ARI/ACS, groups."""

    def go() -> None:
        from rich.table import Table

        from vfctl import doctor as doc
        from vfctl import render
        from vfctl.discover import resolve_pf

        h = host()
        m = model(h, with_devices=True, with_backends=False)
        pfs = [resolve_pf(m, pf, h)] if pf else list(m.pfs)
        checks = doc.run(h, m, pfs)
        from vfctl import cli_pool_read

        checks += cli_pool_read.doctor_checks(h, m)
        failed = [c for c in checks if c.status == doc.FAIL]
        if json_:
            render.emit_json({"ok": not failed, "checks": [c.to_json() for c in checks]})
        else:
            t = Table(title="vfctl doctor", title_justify="left")
            for col in ("status", "check", "target", "detail", "remedy"):
                t.add_column(col)
            style = {doc.OK: "green", doc.WARN: "yellow", doc.FAIL: "red", doc.INFO: "dim"}
            for c in checks:
                t.add_row(
                    f"[{style[c.status]}]{c.status}[/]",
                    *(render.esc(x) for x in (c.name, c.target or "", c.detail, c.remedy or "")),
                )
            render.out.print(t)
        if failed:
            raise typer.Exit(5)

    guarded(json_, False, go)


# ---------------------------------------------------------------- simulated hosts


@sim_app.command("init")
def sim_init(
    dir: Path = typer.Argument(..., help="Directory to create the host in."),
    preset: str = typer.Option("default", "--preset", help="Host shape."),
    force: bool = ForceOpt(False),
) -> None:
    """Write a simulated host (real sysfs layout) that follows the kernel's SR-IOV rules."""

    def go() -> None:
        from vfctl.host import sim

        if preset not in sim.PRESETS:
            raise UsageError(
                f"unknown preset {preset!r}; presets: {', '.join(sorted(sim.PRESETS))}"
            )
        if dir.is_symlink():
            raise RefusedError(f"{dir} is a symbolic link; give the directory itself")
        if dir.exists() and not dir.is_dir():
            raise RefusedError(f"{dir} exists and is not a directory")
        if dir.exists() and any(dir.iterdir()) and not force:
            raise RefusedError(
                f"{dir} exists and is not empty (--force to replace it)", override="--force"
            )
        if dir.exists() and force:
            import shutil

            if not (dir / ".vfctl-sim").is_dir():
                raise RefusedError(f"{dir} is not a simulated host; refusing to delete it")
            shutil.rmtree(dir)
        sim.init(dir, preset)
        print(f"simulated host ({preset}) written to {dir}; use: vfctl --root {dir} list")

    guarded(False, True, go)


@sim_app.command("snapshot")
def sim_snapshot(
    dir: Path = typer.Argument(..., help="Directory to write the snapshot to."),
) -> None:
    """Record this host's (or --root's) PCI/SR-IOV state as a simulated host."""

    def go() -> None:
        from vfctl.host import sim

        if dir.exists() and (not dir.is_dir() or any(dir.iterdir())):
            raise RefusedError(f"{dir} exists and is not an empty directory")
        sim.snapshot(Path(S.root), dir)
        print(f"snapshot of {S.root} written to {dir}")

    guarded(False, True, go)


# commands whose --json document is {"error": …} rather than the mutating envelope
READ_ONLY = {"list", "show", "decode", "doctor", "export", "drift", "metrics", "status", "history"}


def main() -> None:
    if os.environ.get("_VFCTL_COMPLETE") == "words":  # the shell asks (contrib/completion)
        from vfctl import completion

        completion.run()
        return
    try:
        if "--json" in sys.argv[1:]:
            _main_json()
        else:
            app()
    except BrokenPipeError:
        sys.exit(1)


def _main_json() -> None:
    """With --json, a usage error (``enable PF abc --json``) still prints one JSON document."""
    import importlib

    try:  # typer >= 0.8 vendors click as typer._click; older typer uses click itself
        cx: Any = importlib.import_module("typer._click.exceptions")
    except ImportError:
        cx = importlib.import_module("click.exceptions")
    cmd = typer.main.get_command(app)
    try:
        rc = cmd.main(standalone_mode=False)
    except cx.ClickException as e:
        name = getattr(getattr(e, "ctx", None), "info_name", None)
        err = UsageError(e.format_message())
        doc: dict[str, Any] = {"error": {"kind": err.kind, "message": err.message}}
        if name not in READ_ONLY:
            doc = {"changed": False, "actions": [], "rolled_back": [], "warnings": [], **doc}
        from vfctl import render

        render.emit_json(doc)
        print(f"vfctl: error: {err.message}", file=sys.stderr)
        sys.exit(e.exit_code)
    except cx.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()


from vfctl import cli_ops as _cli_ops  # noqa: E402,F401  (registers history/undo/confirm/…)
from vfctl import cli_pool as _cli_pool  # noqa: E402,F401  (registers pool commands)
from vfctl import cli_profile as _cli_profile  # noqa: E402,F401  (registers profile commands)
