"""Day-to-day operation commands (history, undo, confirm, drift, metrics), on the main app.

Wiring only: the logic is in history.py, undo.py, confirm.py, drift.py and metrics.py.
"""

import sys
import time
from collections.abc import Callable
from typing import Any, Optional

import typer

from vfctl.cli_app import Pending, app, detailed_exit, guarded, run_plan, session
from vfctl.errors import VfctlError
from vfctl.model import HostModel

history_app = typer.Typer(
    no_args_is_help=False, invoke_without_command=True, help="What mutating runs did."
)
app.add_typer(history_app, name="history")

_JSON_HELP = "Print one JSON document on stdout."


# ---------------------------------------------------------------- history and undo


def _when(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return "?"


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "time", "user", "via", "argv", "profile", "changed", "success", "error")
    out = {k: r.get(k) for k in keep}
    out["actions"] = len(r.get("actions") or [])
    for k in ("undoes", "reverts", "confirms"):
        if r.get(k):
            out[k] = r[k]
    return out


@history_app.callback()
def history_cmd(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", help="Show the last N runs (0: all)."),
    json_: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """List the last mutating runs (newest last)."""
    if ctx.invoked_subcommand is not None:
        return

    def go() -> None:
        from vfctl import history, render

        recs = history.read(session().host())
        recs = recs[-n:] if n > 0 else recs
        if json_:
            render.emit_json({"runs": [_summary(r) for r in recs]})
            return
        if not recs:
            render.out.print("no runs recorded")
            return
        t = render._table(title="vfctl history")
        for col in ("id", "time", "user", "command", "actions", "result"):
            t.add_column(col, overflow="fold")
        for r in recs:
            res = "ok" if r.get("success") else f"failed: {(r.get('error') or {}).get('kind')}"
            if r.get("success") and not r.get("changed"):
                res = "no change"
            render.row(
                t,
                r["id"],
                _when(r.get("time")),
                str(r.get("user")),
                " ".join(r.get("argv") or []),
                str(len(r.get("actions") or [])),
                res,
            )
        render.out.print(t, markup=False)

    guarded(json_, False, go)


@history_app.command("show")
def history_show(
    ident: str = typer.Argument(..., metavar="ID", help="Run id (or a unique prefix, or last)."),
    json_: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Everything recorded about one run: actions, inverses, keys before and after."""

    def go() -> None:
        from vfctl import history, render

        r = history.find(session().host(), ident)
        if json_:
            render.emit_json(r)
            return
        out = render.out
        out.print(f"run {r['id']} at {_when(r.get('time'))} by {r.get('user')}", markup=False)
        out.print("command: vfctl " + " ".join(r.get("argv") or []), markup=False)
        if r.get("profile"):
            out.print(f"profile: {r['profile']} sha256 {r.get('profile_sha256')}", markup=False)
        err = r.get("error")
        out.print(
            "result: " + ("ok" if err is None else f"{err['kind']}: {err['message']}"), markup=False
        )
        for a in r.get("actions") or []:
            undo = (a.get("undo") or {}).get("detail") or "none"
            out.print(f"  {a['target']}: {a['detail']} (undo: {undo})", markup=False)
        for k in r.get("keys") or []:
            out.print(f"  {k['name']}: {k['before']!r} -> {k['after']!r}", markup=False)

    guarded(json_, False, go)


@app.command("undo")
def undo_cmd(
    ident: str = typer.Argument(..., metavar="ID", help="Run id (or a unique prefix, or last)."),
    check: bool = typer.Option(False, "--check", help="Show the plan; change nothing."),
    force: bool = typer.Option(False, "--force", help="Undo even where the host changed since."),
    json_: bool = typer.Option(False, "--json", help=_JSON_HELP),
    wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for the host lock."),
) -> None:
    """Replay a run's inverses as one journaled plan, if the host still has what it left."""
    from vfctl import history, undo

    state: dict[str, Any] = {}

    def build(m: HostModel) -> tuple[list[Any], Optional[Callable[[HostModel], None]]]:
        rec = history.find(session().host(), ident)
        acts, drifted = undo.plan(rec, history.facts(m), force)
        state.update(rec=rec["id"], drifted=drifted)
        keys = rec.get("keys") or []

        def verify(m2: HostModel) -> None:
            undo.verifier(keys, lambda: history.facts(m2))()

        return acts, verify if acts else None

    def extra() -> dict[str, Any]:
        return {"undoes": state.get("rec"), "drifted": state.get("drifted", [])}

    rec_fields: dict[str, Any] = {}

    def go() -> None:
        rec_fields["undoes"] = history.find(session().host(), ident)["id"]
        run_plan(json_, check, wait, build, extra_fn=extra, record=rec_fields)

    guarded(json_, True, go)


# ---------------------------------------------------------------- confirm or revert


@app.command("confirm")
def confirm_cmd(
    json_: bool = typer.Option(False, "--json", help=_JSON_HELP),
    wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for the host lock."),
    expire: Optional[str] = typer.Option(None, "--expire", hidden=True, metavar="TOKEN"),
) -> None:
    """Keep a change made with --confirm SECONDS (else it is reverted at the deadline)."""
    from vfctl import render, runflow

    def go() -> None:
        from vfctl.inputs import seconds

        seconds(wait, "--wait")  # nan/inf would wait for the lock forever
        s = session()
        if expire is not None:  # the reverter: wait, then revert if still pending
            res = runflow.expire(s, expire, wait)
            if res is not None and json_:
                render.emit_json(res.to_json())
            return
        doc = runflow.keep(s, wait)
        if json_:
            render.emit_json(doc)
        else:
            render.out.print(f"confirmed run {doc['confirmed']}: the change is kept", markup=False)

    guarded(json_, True, go)


# ---------------------------------------------------------------- drift and metrics


def _drift_entries(h: Any, m: HostModel, path: str) -> list[dict[str, Any]]:
    from vfctl import drift, profile, profile_resolve

    prof = profile.load(path)  # bounded: a file or stdin, never truncated
    profile_resolve.check_host(prof, h)
    return drift.compare(profile_resolve.resolve(prof, m, h), m.host_id)


@app.command("drift")
def drift_cmd(
    path: str = typer.Argument(..., help="Profile YAML file, or - for standard input."),
    json_: bool = typer.Option(False, "--json", help=_JSON_HELP),
    all_: bool = typer.Option(False, "--all", "-a", help="List every profile key, not only drift."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 2 when something drifted (0: nothing)."
    ),
) -> None:
    """Which keys of a profile the host no longer has: PF, VF, key, want, have."""
    found: list[dict[str, Any]] = []

    def go() -> None:
        from vfctl import render

        s = session()
        entries = _drift_entries(s.host(), s.model(with_devices=True), path)
        found.extend(e for e in entries if e["drifted"])
        shown = entries if all_ else found
        if json_:
            render.emit_json({"profile": path, "drifted": bool(found), "keys": shown})
            return
        if not shown:
            render.out.print("no drift: the host has every key the profile sets", markup=False)
            return
        t = render._table(title=f"drift of {path}")
        for col in ("PF", "VF", "key", "want", "have", "drifted"):
            t.add_column(col)
        for e in shown:
            render.row(
                t,
                e["netdev"] or e["pf"],
                "-" if e["vf"] is None else str(e["vf"]),
                e["key"],
                str(e["want"]),
                str(e["have"]),
                "yes" if e["drifted"] else "no",
            )
        render.out.print(t, markup=False)

    def run() -> None:
        guarded(json_, False, go)
        if detailed_exitcode and found:
            raise Pending(2)

    detailed_exit(detailed_exitcode, run)


@app.command("metrics")
def metrics_cmd(
    textfile: Optional[str] = typer.Option(
        None, "--textfile", metavar="DIR", help="Write DIR/vfctl.prom atomically (node_exporter)."
    ),
    profiles: Optional[list[str]] = typer.Option(
        None, "--profile", help="Report drift against this profile (repeatable)."
    ),
) -> None:
    """Prometheus metrics: VFs per PF, VF info and traffic, drift, the last run."""

    def go() -> None:
        import os

        from vfctl import history, metrics
        from vfctl.host import netlink

        s = session()
        h = s.host()
        m = s.model(with_devices=True, lenient=True)
        stats = {p.netdev: netlink.vf_stats(h, p.netdev) for p in m.pfs if p.netdev and p.num_vfs}
        chosen = list(profiles or [])
        persisted = h.path("etc/vfctl/profile.yaml")
        drift: dict[str, Any] = {p: _drift_entries(h, m, p) for p in chosen}
        if not profiles and os.path.isfile(persisted):
            drift = {}  # the implicit profile: a broken one costs its drift, not the metrics
            try:
                drift[str(persisted)] = _drift_entries(h, m, str(persisted))
            except VfctlError as e:
                print(f"vfctl: warning: drift of {persisted}: {e.message}", file=sys.stderr)
                drift[str(persisted)] = None
        try:
            runs = [r for r in history.read(h) if not r.get("confirms")]
        except VfctlError as e:
            print(f"vfctl: warning: history: {e.message}", file=sys.stderr)
            runs = []
        fams = metrics.families(m, stats, s.pools(m), drift, runs[-1] if runs else None)
        text = metrics.render(fams)
        if textfile is None:
            sys.stdout.write(text)
        else:
            metrics.write_textfile(textfile, text)

    guarded(False, False, go)
