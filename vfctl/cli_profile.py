"""Profile commands (plan/apply/export/persist), registered on the main app."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from vfctl.cli_app import app, detailed_exit, guarded, run_plan, session
from vfctl.cli_opts import CheckOpt, ConfirmOpt, JsonOpt, WaitOpt
from vfctl.errors import NotFoundError, UsageError
from vfctl.model import HostModel
from vfctl.session import Session

persist_app = typer.Typer(no_args_is_help=True, help="Re-apply a profile at every boot.")
app.add_typer(persist_app, name="persist")


def ProfileArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="Profile YAML file, or - for standard input.")


def NoAttachOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--no-attach", help="Host part only: skip the attach phase.")


def DetailedOpt() -> Any:
    return typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0: nothing to do; 2: changes pending (with --check) or made.",
    )


def _load(path: str) -> Any:
    from vfctl import profile

    return profile.load(path)


def _converge(
    path: str,
    check: bool,
    diff: bool,
    json_: bool,
    wait: float,
    attach: bool,
    refuse: bool,
    confirm: float | None = None,
    detailed_exitcode: bool = False,
) -> None:
    from vfctl import converge, history, profile_resolve, render

    prof = _load(path)  # problems: exit 2 before any lock or discovery
    record = {"profile": path, "profile_sha256": history.file_sha256(path)}
    state: dict[str, Any] = {}
    s = session()
    get = s.configured_backend

    def build(m: HostModel) -> tuple[list[Any], Callable[[HostModel], None] | None]:
        h = s.host()
        profile_resolve.check_host(prof, h)
        targets = profile_resolve.resolve(prof, m, h)
        wants_attach = attach and (
            any("attach" in w.entry for t in targets for w in t.vfs)
            or bool(prof.data.get("pools") or prof.data.get("attach"))
        )
        p = converge.plan(
            m, targets, get if wants_attach else None, s.opts.pve_node, attach, prof=prof, host=h
        )
        state["plan"] = p
        if p.needs_backend:
            need = sorted({n["backend"] for n in p.needs_backend})
            why = "; ".join(
                f"{n['backend']} for VM {n['vm']}: {n['reason']}" for n in p.needs_backend[:3]
            )
            if refuse:
                raise UsageError(
                    f"{prof.file}: attaching needs the {' and '.join(need)} backend, which is "
                    f"not available ({why}); configure it (--backend, and the PVE_*/libvirt "
                    "settings), or apply the host part with --no-attach"
                )
            if not json_:
                render.warn(
                    f"attach part not planned: needs the {' and '.join(need)} backend ({why})",
                    "note",
                )
        if diff:
            before, after = converge.diff_views(targets, m.host_id)
            state["diff"] = {"before": before, "after": after}
            if not json_:
                text = converge.unified(before, after, prof.file)
                render.out.print(text or "no differences", markup=False, highlight=False)

        def verify(m2: HostModel) -> None:
            converge.verify(m2, targets, p, get if p.attach_requests else None)

        return p.actions, verify

    def extra() -> dict[str, Any]:
        p = state.get("plan")
        out: dict[str, Any] = {"profile": prof.file}
        if p is not None:
            out["phases"] = {
                k: len(v) for k, v in p.phases.items() if k != "pools" or "pools" in prof.data
            }
            out["needs_backend"] = p.needs_backend
        if "diff" in state:
            out["diff"] = state["diff"]
        if p is not None and p.attach_requests:  # pending (Proxmox), plan-time warnings
            for name in sorted({n for n, _r, _p in p.attach_requests}):
                for k, v in s.backend_report(dict(s.connected()).get(name)).items():
                    out[k] = [*out.get(k, []), *(x for x in v if x not in out.get(k, []))]
        return out

    run_plan(
        json_, check, wait, build, with_devices=True, extra_fn=extra,
        confirm=confirm, detailed_exitcode=detailed_exitcode, record=record,
    )  # fmt: skip


@app.command("plan")
def plan_cmd(
    path: str = ProfileArg(),
    json_: bool = JsonOpt(False),
    no_attach: bool = NoAttachOpt(False),
    wait: float = WaitOpt(30.0),
    detailed_exitcode: bool = DetailedOpt(),
) -> None:
    """Show the ordered actions a profile needs (autoprobe, numvfs, settings, bind, attach)."""
    attach = not no_attach

    def go() -> None:
        _converge(path, True, False, json_, wait, attach, False, None, detailed_exitcode)

    detailed_exit(detailed_exitcode, lambda: guarded(json_, True, go))


@app.command("apply")
def apply_cmd(
    path: str = ProfileArg(),
    check: bool = CheckOpt(False),
    diff: bool = typer.Option(False, "--diff", help="Show host vs profile."),
    json_: bool = JsonOpt(False),
    no_attach: bool = NoAttachOpt(False),
    wait: float = WaitOpt(30.0),
    confirm: Optional[float] = ConfirmOpt(),
    detailed_exitcode: bool = DetailedOpt(),
) -> None:
    """Bring the host to a profile: journaled, rolled back on failure, verified after."""
    attach = not no_attach

    def go() -> None:
        _converge(path, check, diff, json_, wait, attach, True, confirm, detailed_exitcode)

    detailed_exit(detailed_exitcode, lambda: guarded(json_, True, go))


@app.command("export")
def export_cmd(
    pfs: Optional[list[str]] = typer.Argument(None, help="PFs to export (default: all)."),
    json_: bool = JsonOpt(False),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write to FILE."),
) -> None:
    """Print the host's current SR-IOV state as a profile (`export | apply -` is a no-op)."""

    def go() -> None:
        import json

        from vfctl import profile_export, profile_resolve
        from vfctl.discover import resolve_pf

        s = session()
        h = s.host()
        m = s.model()
        chosen = [resolve_pf(m, p, h) for p in pfs] if pfs else None
        views = _pool_views(s, chosen)
        from vfctl import profile_pools

        doc = profile_export.export(m, chosen, profile_pools.member_addresses(views))
        pools_, attach_ = profile_pools.export(views, m)
        if pools_:
            doc["pools"] = pools_
        if attach_:
            doc["attach"] = attach_
        text = (
            (json.dumps(doc, indent=2) + "\n")
            if json_
            else profile_export.dump_profile(
                doc, f"exported by vfctl from {profile_resolve.hostname(h) or h.root}"
            )
        )
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except FileNotFoundError as e:  # a user-named path that is not there: exit 3
                raise NotFoundError(
                    f"-o {output}: cannot write: {os.strerror(e.errno or 0)}"
                ) from None
            except OSError as e:  # /dev/full, a directory, read-only
                raise UsageError(
                    f"-o {output}: cannot write: {os.strerror(e.errno or 0)}"
                ) from None
        else:
            sys.stdout.write(text)

    guarded(json_, False, go)


def _pool_views(s: Session, chosen: list[Any] | None) -> list[Any]:
    """vfctl's pools in the VM managers the inventory connected to (their members on chosen PFs)."""
    from vfctl import profile_pools

    views: list[Any] = []
    for _name, b in sorted(s.connected(), key=lambda nb: nb[0]):
        views += profile_pools.wrap(b).views()
    if chosen is not None:
        mine = {v.address for p in chosen for v in p.vfs}
        views = [v for v in views if set(v.members) & mine]
    return views


# ---------------------------------------------------------------- persist


def _root() -> Path:
    r = Path(session().opts.root)
    if not r.is_dir():
        raise NotFoundError(f"host root {r} does not exist")
    return r


def _exe() -> str:
    found = shutil.which("vfctl")
    here = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if here is not None and here.name == "vfctl" and here.is_file():
        return str(here)
    return found or "/usr/bin/vfctl"


def _systemctl(*args: str) -> None:
    import subprocess

    subprocess.run(["systemctl", *args], check=False, capture_output=True, timeout=60)


def _persist_result(changes: list[Any], check: bool, json_: bool, extra: dict[str, Any]) -> None:
    from vfctl import render

    doc = {
        "changed": bool(changes),
        "actions": [c.to_json() for c in changes],
        "rolled_back": [],
        "warnings": [],
        "error": None,
        **extra,
    }
    if json_:
        render.emit_json(doc)
        return
    verb = "would" if check else "did"
    for c in changes:
        render.out.print(f"{verb} {c.what} /{c.path}", markup=False)
    if not changes:
        render.out.print("nothing to do: already in the desired state")


@persist_app.command("enable")
def persist_enable(
    path: str = ProfileArg(),
    exe: Optional[str] = typer.Option(None, "--exec", help="vfctl path the unit runs."),
    check: bool = CheckOpt(False),
    json_: bool = JsonOpt(False),
) -> None:
    """Install PROFILE as /etc/vfctl/profile.yaml and a boot unit that applies it."""

    def go() -> None:
        from vfctl import persist, profile

        raw = profile.read(path)  # bounded, regular file or stdin, read once
        profile.loads(raw, "<stdin>" if path == "-" else path)
        root = _root()
        program = exe or _exe()
        from vfctl.inputs import one_line

        one_line(program, "--exec")  # a newline would add directives to a root unit
        if not os.path.isabs(program):
            raise UsageError(f"--exec {program!r}: the unit needs an absolute path")
        changes = persist.enable(root, raw, program, check)
        if changes and not check and persist.systemd_running(root):
            _systemctl("daemon-reload")
        _persist_result(changes, check, json_, {"unit": persist.status(root)["unit"]})

    guarded(json_, True, go)


@persist_app.command("disable")
def persist_disable(check: bool = CheckOpt(False), json_: bool = JsonOpt(False)) -> None:
    """Remove the boot unit and the installed profile (the host's current state stays)."""

    def go() -> None:
        from vfctl import persist

        root = _root()
        changes = persist.disable(root, check)
        if changes and not check and persist.systemd_running(root):
            _systemctl("daemon-reload")
        _persist_result(changes, check, json_, {})

    guarded(json_, True, go)


@persist_app.command("status")
def persist_status(json_: bool = JsonOpt(False)) -> None:
    """Whether the boot unit is installed and enabled (and, on a live system, active)."""

    def go() -> None:
        import subprocess

        from vfctl import persist, render

        root = _root()
        st = persist.status(root)
        st["active"] = None
        if persist.systemd_running(root):
            r = subprocess.run(
                ["systemctl", "is-active", persist.UNIT],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
            st["active"] = r.stdout.strip() or None
        if json_:
            render.emit_json(st)
            return
        for k, v in st.items():
            render.out.print(f"{k}: {v}", markup=False)

    guarded(json_, False, go)
