"""Man pages written from the CLI's own command tree, so they cannot drift from ``--help``.

``python3 -m vfctl.manpage DIR`` writes vfctl.8 and one page per command (vfctl-set.8,
vfctl-sim-init.8, …); the Debian build runs it. Pure text in, text out: no host access.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vfctl import __version__
from vfctl.errors import EXIT_CODES

SECTION = "8"
ENVIRONMENT = (
    ("VFCTL_ROOT", "host root, as --root"),
    ("VFCTL_BACKEND", "VM manager, as --backend"),
    ("VFCTL_LIBVIRT_URI", "libvirt connection URI"),
    ("VFCTL_PVE_NODE", "Proxmox node name"),
)
FILES = (
    ("/etc/vfctl/profile.yaml", "the profile `vfctl persist enable` installs for boot"),
    ("/usr/lib/systemd/system/vfctl.service", "the boot unit (enabled only by persist enable)"),
    ("/run/vfctl/", "vfctl's private state directory (mode 0700): lock, journal"),
    ("/run/vfctl/lock", "the host lock every mutating command takes (flock)"),
    ("/run/vfctl/journal.json", "the journal of a run in progress; see vfctl-recover(8)"),
    ("/usr/share/vfctl/profiles/", "example profiles and their JSON Schema"),
)


def esc(text: str) -> str:
    """roff-safe text: backslashes, minus signs, and lines that would read as requests."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + ln if ln[:1] in (".", "'") else ln for ln in text.splitlines())


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) for every command, depth first, hidden ones left out."""
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from walk(sub, (*path, name))


def _paragraphs(text: str | None) -> str:
    if not text:
        return ""
    paras = [re.sub(r"\s*\n\s*", " ", p.strip()) for p in text.strip().split("\n\n")]
    return "\n.PP\n".join(esc(p) for p in paras if p)


def _param_rows(cmd: Any, ctx: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    args: list[tuple[str, str]] = []
    opts: list[tuple[str, str]] = []
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        if p.param_type_name == "argument":
            name = (p.metavar or p.name or "").strip("{}").upper()
            args.append((name, getattr(p, "help", None) or ""))
        else:
            rec = p.get_help_record(ctx)
            if rec:
                opts.append(rec)
    return args, opts


def _tp(items: list[tuple[str, str]]) -> str:
    return "".join(f".TP\n.B {esc(k)}\n{esc(v) or '.'}\n" for k, v in items)


def page(root: Any, path: tuple[str, ...], cmd: Any) -> str:
    """One man page for the command at ``path`` (() is vfctl itself)."""
    name = "-".join(("vfctl", *path))
    # the command's own Context class: typer may bring click vendored or as a dependency
    with root.context_class(root, info_name="vfctl") as rctx:
        ctx = rctx
        for part in path:
            sub = ctx.command.commands[part]
            ctx = sub.context_class(sub, info_name=part, parent=ctx)
        usage = " ".join(ctx.command.collect_usage_pieces(ctx))
        args, opts = _param_rows(cmd, ctx)
    summary = (cmd.get_short_help_str(limit=200) if path else root.help) or name
    out = [
        f'.TH {name.upper()} {SECTION} "" "vfctl {__version__}" "vfctl"',
        ".SH NAME",
        f"{esc(name)} \\- {esc(summary.rstrip('.'))}",
        ".SH SYNOPSIS",
        f".B {esc(' '.join(('vfctl', *path)))}",
        esc(usage),
        ".SH DESCRIPTION",
        _paragraphs(cmd.help) or esc(summary),
    ]
    if args:
        out += [".SH ARGUMENTS", _tp(args).rstrip("\n")]
    if opts:
        out += [".SH OPTIONS", _tp(opts).rstrip("\n")]
    subs = [(n, c) for n, c in sorted(getattr(cmd, "commands", {}).items()) if not c.hidden]
    if subs:
        out += [".SH COMMANDS"]
        out += [
            f".TP\n.BR {esc('-'.join(('vfctl', *path, n)))} ({SECTION})\n"
            f"{esc(c.get_short_help_str(limit=200))}"
            for n, c in subs
        ]
    if not path:
        out += [".SH EXIT STATUS", _tp([(str(k), v) for k, v in EXIT_CODES.items()]).rstrip("\n")]
        out += [".SH ENVIRONMENT", _tp(list(ENVIRONMENT)).rstrip("\n")]
        out += [".SH FILES", _tp(list(FILES)).rstrip("\n")]
        out += [
            ".SH NOTES",
            esc(
                "Global options (--root, --backend, --json where offered) go before the "
                "command. Documentation: /usr/share/doc/vfctl/."
            ),
        ]
    see = ["vfctl(8)"] if path else []
    see += [f"{'-'.join(('vfctl', *p))}({SECTION})" for p, _ in walk(cmd, path) if p != path]
    if see:
        out += [".SH SEE ALSO", esc(", ".join(see))]
    return "\n".join(out) + "\n"


def pages() -> dict[str, str]:
    """File name → page text for vfctl and every command."""
    import typer

    from vfctl.cli import app

    root = typer.main.get_command(app)
    return {
        "-".join(("vfctl", *path)) + f".{SECTION}": page(root, path, cmd)
        for path, cmd in walk(root)
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m vfctl.manpage DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        (out / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
