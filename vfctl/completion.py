"""Shell completion computed by vfctl itself: commands and options from the live command tree,
PF names, VF ids, VM ids and paths from the host (``--root`` aware).

The bash, zsh and fish scripts (contrib/completion/) are thin: they run
``_VFCTL_COMPLETE=words _VFCTL_CWORD=N vfctl WORD…`` and offer what it prints, one candidate a
line. ``__files__`` / ``__dirs__`` ask the shell for its own path completion. Nothing here
writes, locks, or talks to a VM manager: completion must be instant and harmless.
"""

from __future__ import annotations

import os
import re
from typing import Any

FILES = "__files__"
DIRS = "__dirs__"
BACKENDS = ("auto", "none", "libvirt", "proxmox")
_VALUE_KINDS = {"pf": "pf", "pfs": "pf", "vf": "vf", "vfs": "vf", "vm": "vm"}
_PATH_KINDS = {"path": FILES, "file": FILES, "dir": DIRS}


def _takes_value(p: Any) -> bool:
    return not (getattr(p, "is_flag", False) or getattr(p, "count", False))


def _option(cmd: Any, token: str) -> Any:
    name = token.split("=", 1)[0]
    for p in cmd.params:
        if p.param_type_name == "option" and name in (*p.opts, *p.secondary_opts):
            return p
    return None


def pf_names(root: str) -> list[str]:
    """Every SR-IOV PF: its netdevs, then its PCI address."""
    from vfctl.host.open import open_host
    from vfctl.host.sysfs import CLASS_NET, PCI_DEVICES

    h = open_host(root)
    out: list[str] = []
    for addr in sorted(h.listdir(PCI_DEVICES)):
        if not h.exists(f"{PCI_DEVICES}/{addr}/sriov_totalvfs"):
            continue
        out += sorted(h.listdir(f"{PCI_DEVICES}/{addr}/net"))
        out.append(addr)
    if not out:  # fall back on netdev names under class/net with a device that is a PF
        out = [n for n in h.listdir(CLASS_NET) if h.exists(f"{CLASS_NET}/{n}/device/sriov_numvfs")]
    return out


def vf_ids(root: str, pf: str) -> list[str]:
    """``vfN`` for each VF the PF has now, from its virtfnN links."""
    from vfctl.host.open import open_host
    from vfctl.host.sysfs import CLASS_NET, PCI_DEVICES

    h = open_host(root)
    dev = f"{PCI_DEVICES}/{pf}" if ":" in pf else f"{CLASS_NET}/{pf}/device"
    idx = [int(m.group(1)) for n in h.listdir(dev) if (m := re.fullmatch(r"virtfn(\d+)", n))]
    return [f"vf{i}" for i in sorted(idx)]


def vm_ids(root: str) -> list[str]:
    """Proxmox VM ids (/etc/pve/qemu-server) and libvirt domain names (their XML files)."""
    from vfctl.host.open import open_host

    h = open_host(root)
    out = [n.removesuffix(".conf") for n in h.listdir("etc/pve/qemu-server") if n.endswith(".conf")]
    for d in ("etc/libvirt/qemu", "run/libvirt/qemu"):
        out += [n.removesuffix(".xml") for n in h.listdir(d) if n.endswith(".xml")]
    return sorted(set(out), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))


def candidates(root_cmd: Any, words: list[str], cword: int, env_root: str | None) -> list[str]:
    """What may stand at ``words[cword]`` (``words`` without the program name)."""
    words = words[: cword + 1] + [""] * (cword + 1 - len(words))
    cur = words[cword]
    cmd = root_cmd
    root = env_root or "/"
    positional: list[str] = []
    pending: Any = None  # the option whose value the previous word was waiting for
    for w in words[:cword]:
        if pending is not None:
            if "--root" in pending.opts:
                root = w
            pending = None
            continue
        if w.startswith("-") and w != "-":
            opt = _option(cmd, w)
            if opt is not None and _takes_value(opt) and "=" not in w:
                pending = opt
            elif opt is not None and "--root" in opt.opts and "=" in w:
                root = w.split("=", 1)[1]
            continue
        sub = getattr(cmd, "commands", {}).get(w)
        if sub is not None and not positional:
            cmd = sub
            continue
        positional.append(w)
    if pending is not None:
        if "--root" in pending.opts:
            return [DIRS]
        if "--backend" in pending.opts:
            return [b for b in BACKENDS if b.startswith(cur)]
        return [FILES] if pending.name in _PATH_KINDS or "file" in (pending.name or "") else []
    if cur.startswith("-"):
        opts = [o for p in cmd.params if not getattr(p, "hidden", False) for o in p.opts]
        return sorted(o for o in opts if o.startswith(cur))
    subs = getattr(cmd, "commands", None)
    if subs is not None:
        return [n for n, c in subs.items() if n.startswith(cur) and not c.hidden]
    args = [p for p in cmd.params if p.param_type_name == "argument"]
    if not args:
        return []
    i = min(len(positional), len(args) - 1)
    name = args[i].name or ""
    if len(positional) >= len(args) and args[-1].nargs != -1:
        return []
    if name in _PATH_KINDS:
        return [_PATH_KINDS[name]]
    kind = _VALUE_KINDS.get(name)
    try:
        if kind == "pf":
            found = pf_names(root)
        elif kind == "vf":
            pf_pos = [j for j, a in enumerate(args) if a.name == "pf"]
            pf = positional[pf_pos[0]] if pf_pos and pf_pos[0] < len(positional) else None
            found = vf_ids(root, pf) if pf else []
        elif kind == "vm":
            found = vm_ids(root)
        else:
            found = []
    except Exception:  # a half-typed --root or an odd tree: no candidates, never a traceback
        return []
    return [c for c in found if c.startswith(cur)]


def run(app: Any) -> None:
    """Entry point from ``vfctl.cli.main`` (which passes its app) when ``_VFCTL_COMPLETE=words``
    is set."""
    import sys

    import typer

    words = sys.argv[1:]
    try:
        cword = int(os.environ.get("_VFCTL_CWORD", len(words)))
    except ValueError:
        cword = len(words)
    root_cmd = typer.main.get_command(app)
    for c in candidates(root_cmd, words, cword, os.environ.get("VFCTL_ROOT")):
        print(c)
