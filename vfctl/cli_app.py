"""The typer app, its global options, and the glue every command module shares.

Command modules register on :data:`app` and reach the host, discovery and VM managers only
through :func:`session` (one :class:`vfctl.session.Session` per invocation).
"""

import sys
import time
from collections.abc import Callable
from typing import Any, Optional

import typer

from vfctl import __version__
from vfctl.errors import VfctlError
from vfctl.model import HostModel
from vfctl.session import Options, Session

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

_current: list[Session] = [Session()]


def session() -> Session:
    """This invocation's session (made by the global-options callback)."""
    return _current[0]


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
    _current[0] = Session(
        Options(
            root=root,
            verbose=verbose,
            backend=backend,
            libvirt_uri=libvirt_uri,
            pve_node=pve_node,
            pve_ca=pve_ca,
            insecure=insecure,
        )
    )


# ---------------------------------------------------------------- errors and exit codes


def fail(e: VfctlError, as_json: bool, mutating: bool) -> None:
    """Print the error (and with --json its document) and exit with its code."""
    from vfctl import render

    raise typer.Exit(render.failure(e, as_json, mutating))


def guarded(as_json: bool, mutating: bool, fn: Callable[[], None]) -> None:
    try:
        fn()
    except VfctlError as e:
        fail(e, as_json, mutating)
    except KeyboardInterrupt:
        print("vfctl: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


class Pending(typer.Exit):
    """Exit 2 from --detailed-exitcode: changes are pending (not a usage error)."""


def detailed_exit(enabled: bool, fn: Callable[[], None]) -> None:
    """With --detailed-exitcode, 2 means "changes pending": an invalid input exits 1 instead."""
    if not enabled:
        fn()
        return
    try:
        fn()
    except typer.Exit as e:
        if e.exit_code == 2 and not isinstance(e, Pending):
            raise typer.Exit(1) from None
        raise


# ---------------------------------------------------------------- mutating commands


def run_plan(
    as_json: bool,
    check: bool,
    wait: float,
    build: Callable[[HostModel], tuple[list[Any], Callable[[HostModel], None] | None]],
    with_devices: bool = False,
    extra_fn: Callable[[], dict[str, Any]] | None = None,
    *,
    confirm: float | None = None,
    detailed_exitcode: bool = False,
    record: dict[str, Any] | None = None,
    plan_warnings: list[str] | None = None,
) -> None:
    """Run a command's plan through the session, then render its Result.

    ``detailed_exitcode``: exit 2 when changes are pending (--check) or were made;
    ``extra_fn``: fields the command adds to the result document after the run;
    ``plan_warnings``: what ``build`` noted while planning, shown first among the warnings.
    """
    from vfctl import render, runflow

    def go() -> None:
        s = session()
        res = runflow.run(
            s,
            build,
            check=check,
            wait=wait,
            with_devices=with_devices,
            confirm=confirm,
            record=record,
            progress=(lambda m: render.err.print(m, style="dim", markup=False))
            if s.opts.verbose and not as_json
            else None,
            interactive=not as_json and sys.stderr.isatty(),
        )
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
            after_apply(s, res.extra["confirm"], wait)
        if detailed_exitcode and res.changed:  # pending (--check), or made (as Puppet's)
            raise Pending(2)

    guarded(as_json, True, go)


def after_apply(s: Session, info: dict[str, Any], wait: float) -> None:
    """On a terminal: the countdown; elsewhere: say how to confirm."""
    from vfctl import confirm, render, runflow

    left = int(info["deadline"] - time.time())
    how = (
        "a transient systemd timer"
        if info.get("mechanism") == "systemd-timer"
        else "a detached process"
    )
    render.err.print(
        f"run {info.get('history_id')}: confirm within {left} s with `vfctl confirm`, "
        f"or {how} reverts it",
        markup=False,
    )
    outcome = confirm.countdown(float(info["deadline"]))
    if outcome == "detached":
        return
    done, res = runflow.conclude(s, info["token"], outcome, wait)
    if done == "gone":
        render.err.print("the change is no longer pending", markup=False)
    elif done == "confirmed":
        render.err.print("confirmed: the change is kept", markup=False)
    else:
        render.err.print(
            f"reverted ({outcome}): {len(res.actions) if res else 0} actions", markup=False
        )
