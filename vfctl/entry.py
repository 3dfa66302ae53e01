"""The ``vfctl`` command's entry point: the hot commands answer before typer is imported.

Importing the typer app costs more than a short command's whole work (python -X importtime:
typer and click alone ~45 ms). ``--version`` and ``--help`` need none of it, so they are
answered here: the help is typer's own rendering, cached in :mod:`vfctl.helptext` (regenerated
and compared by tests/core/test_entry.py) and used only where typer would print exactly that
text (same typer version, 80 columns or more). Everything else, and anything unusual, goes to
``vfctl.cli`` unchanged, so the CLI, its messages and exit codes stay typer's.
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
    from vfctl.cli import main as cli_main

    cli_main()
