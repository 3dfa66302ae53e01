"""Typer option and argument factories shared by every command module, and on/off parsing."""

from typing import Any

import typer

from vfctl import vfattrs
from vfctl.errors import UsageError


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


def ForceHostNicOpt() -> Any:
    """The one override of the host's own connectivity (default-route chain); no help text yet,
    as before, so --help and the man pages stay as they are."""
    return typer.Option(False, "--force-host-nic")


def WaitOpt(default: Any = ...) -> Any:
    return typer.Option(default, "--wait", help="Seconds to wait for the host lock.")


def ConfirmOpt() -> Any:
    return typer.Option(
        None,
        "--confirm",
        metavar="SECONDS",
        help="Revert automatically unless `vfctl confirm` runs within SECONDS.",
    )


def VmArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="VM: libvirt name/UUID, or Proxmox 101/vm101/name.")


def PfArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="PF netdev or PCI address.")


def VfArg(default: Any = ...) -> Any:
    return typer.Argument(default, help="VF: vf3, 3, or its PCI address.")


def onoff(v: str | None, what: str) -> bool | None:
    """``on``/``off`` (and 1/0, true/false, yes/no) as a bool; None stays None."""
    if v is None:
        return None
    if v.lower() in ("on", "1", "true", "yes"):
        return True
    if v.lower() in ("off", "0", "false", "no"):
        return False
    raise UsageError(f"invalid {what} {v!r}: on or off")
