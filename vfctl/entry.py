"""The ``vfctl`` command's entry point: ``vfctl --version`` answers before the CLI is imported.

Importing the typer app costs most of a short command's time (python -X importtime); the
version needs none of it. Everything else goes to ``vfctl.cli`` unchanged, so the CLI, its
messages and exit codes stay typer's (tests/core/test_entry.py compares the two).
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from vfctl import __version__

        print(f"vfctl {__version__}")
        return
    from vfctl.cli import main as cli_main

    cli_main()
