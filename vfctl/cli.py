"""The vfctl command line: the app with every command registered in order, and main().

Parsing and rendering live in the ``cli_*`` modules; they reach the host and the VM managers
through a :class:`vfctl.session.Session` (``cli_app.session()``). This module only puts the
commands in their help order and runs the app.
"""

import os
import sys
from typing import Any

import typer

from vfctl import cli_host, cli_read, cli_vm
from vfctl.cli_app import app as app
from vfctl.errors import UsageError

# the order `vfctl --help` lists them in
app.command("list")(cli_read.list_cmd)
app.command()(cli_read.show)
app.command()(cli_read.decode)
app.command()(cli_host.enable)
app.command()(cli_host.disable)
app.command()(cli_host.bind)
app.command()(cli_host.unbind)
app.command("set")(cli_host.set_cmd)
app.command()(cli_vm.attach)
app.command()(cli_vm.detach)
app.command()(cli_vm.recover)
app.command()(cli_read.doctor)

from vfctl import cli_ops as _cli_ops  # noqa: E402,F401  (history/undo/confirm/drift/metrics)
from vfctl import cli_pool as _cli_pool  # noqa: E402,F401  (pool create/add/remove/sync/delete)
from vfctl import cli_pool_read as _cli_pool_read  # noqa: E402,F401  (pool list/show, after)
from vfctl import cli_profile as _cli_profile  # noqa: E402,F401  (plan/apply/export/persist)
from vfctl import cli_sim as _cli_sim  # noqa: E402,F401  (sim init/snapshot)

# commands whose --json document is {"error": …} rather than the mutating envelope
READ_ONLY = {"list", "show", "decode", "doctor", "export", "drift", "metrics", "status", "history"}


def main() -> None:
    if os.environ.get("_VFCTL_COMPLETE") == "words":  # the shell asks (contrib/completion)
        from vfctl import completion

        completion.run(app)
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
