"""The ``vfctl`` command's entry point: the hot commands answer before typer is imported.

Importing the typer app costs more than a short command's whole work (python -X importtime:
typer and click alone ~45 ms). ``--version`` and ``--help`` need none of it: the help is
typer's own rendering, cached in :mod:`vfctl.helptext` (regenerated and compared by
tests/core/test_entry.py) and used only where typer would print exactly that text (same typer
version, 80 columns or more). ``list --json`` and ``show PF --json`` with plain global options
run the typer commands' own code (:mod:`vfctl.readjson` on a :class:`vfctl.session.Session`).
Everything else, and anything unusual, goes to ``vfctl.cli`` unchanged, so the CLI, its
messages and exit codes stay typer's (tests/host/test_fastpath.py compares the two paths).
"""

from __future__ import annotations

import os
import sys


def _program_name() -> str:
    """The program name click shows in ``Usage:`` (click.utils._detect_program_name's rule)."""
    path = sys.argv[0]
    main = sys.modules.get("__main__")
    package = getattr(main, "__package__", None)
    if package in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def _columns() -> int:
    """The terminal width click formats help for (shutil.get_terminal_size's rule)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


def _typer_version() -> str | None:
    """The version of the typer Python would import (with click vendored), without importing it."""
    for d in sys.path:
        base = os.path.join(d or ".", "typer")
        if os.path.exists(base + ".py"):
            return None
        try:
            with open(os.path.join(base, "__init__.py"), "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        if not os.path.isdir(os.path.join(base, "_click")):
            return None  # an older typer on an external click: its rendering may differ
        at = head.find(b'__version__ = "')
        if at < 0:
            return None
        return head[at + 15 : head.find(b'"', at + 15)].decode("ascii", "replace")
    return None


def _help() -> str | None:
    """Typer's text for ``vfctl --help``, when the cached rendering is exactly it."""
    from vfctl import helptext

    prog = _program_name()
    if len(prog) > 40 or _columns() < 80 or _typer_version() != helptext.TYPER:
        return None  # a long name wraps the usage line; a narrow terminal everything
    return helptext.HEAD + prog + helptext.TAIL


# global options the lean path takes (as typer declares them in cli_app._global), env var
_VALUED = {
    "--root": ("root", "VFCTL_ROOT"),
    "--backend": ("backend", "VFCTL_BACKEND"),
    "--libvirt-uri": ("libvirt_uri", "VFCTL_LIBVIRT_URI"),
    "--pve-node": ("pve_node", "VFCTL_PVE_NODE"),
    "--pve-ca": ("pve_ca", None),
}
_COMMANDS = {"list": {"--json", "--all", "-a"}, "show": {"--json"}}


def parse(args: list[str]) -> tuple[dict[str, object], str, list[str]] | None:
    """``(options, command, positionals)`` of a plain ``list --json`` / ``show PF --json``.

    None for anything else or anything unusual (a repeated option, ``--opt=`` forms with
    odd values, ``--``, an empty environment variable, ``--help`` …): typer parses those.
    """
    opts: dict[str, object] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name in _VALUED and _VALUED[name][0] not in opts:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if not value or value.startswith("-"):
                return None
            opts[_VALUED[name][0]] = value
        elif args[i] == "--insecure" and "insecure" not in opts:
            opts["insecure"] = True
        elif args[i] in ("-v", "--verbose"):
            opts["verbose"] = int(opts.get("verbose", 0)) + 1  # type: ignore[call-overload]
        else:
            return None
        i += 1
    for key, env in _VALUED.values():
        if env is not None and key not in opts and env in os.environ:
            if not os.environ[env]:
                return None  # typer versions differ on empty values: let typer decide
            opts[key] = os.environ[env]
    if i >= len(args) or args[i] not in _COMMANDS:
        return None
    command, rest = args[i], args[i + 1 :]
    flags = [a for a in rest if a.startswith("-")]
    positionals = [a for a in rest if not a.startswith("-")]
    if "--json" not in flags or len(set(flags)) != len(flags):
        return None
    if not set(flags) <= _COMMANDS[command] or ("--all" in flags and "-a" in flags):
        return None
    if len(positionals) != (1 if command == "show" else 0):
        return None
    return opts, command, positionals


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from vfctl import __version__

        print(f"vfctl {__version__}")
        return
    if (args == ["--help"] or args == ["-h"]) and "_VFCTL_COMPLETE" not in os.environ:
        text = _help()
        if text is not None:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:
                sys.exit(1)
            return
    parsed = parse(args) if "_VFCTL_COMPLETE" not in os.environ else None
    if parsed is not None:
        sys.exit(_read_json(*parsed))
    from vfctl.cli import main as cli_main

    cli_main()


def _read_json(opts: dict[str, object], command: str, positionals: list[str]) -> int:
    """``list --json`` / ``show PF --json``: the typer commands' own code (vfctl.readjson)."""
    import gc

    # a short read that exits: reference counting frees what it drops, and the cycle
    # collector would only walk the growing model again and again (~5% of list --all on
    # 16,384 VFs, benchmarks/README.md)
    gc.disable()
    from vfctl import readjson, render
    from vfctl.errors import VfctlError
    from vfctl.session import Options, Session

    s = Session(Options(**opts))  # type: ignore[arg-type]
    try:
        if command == "list":
            readjson.list_json(s)
        else:
            readjson.show_json(s, positionals[0])
    except VfctlError as e:
        return render.failure(e, True, False)
    except KeyboardInterrupt:
        print("vfctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return 0
