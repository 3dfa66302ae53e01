"""Backend selection: which VM manager (if any) this host has, created lazily.

Nothing here imports libvirt or proxmoxer; a backend module is imported only when chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vfctl.errors import UsageError
from vfctl.host.sysfs import Host

if TYPE_CHECKING:
    from vfctl.backends.base import Backend

NAMES = ("libvirt", "proxmox")


@dataclass(frozen=True)
class BackendConfig:
    """Connection choices from the CLI/env; secrets never live here (they stay in the env)."""

    name: str = "auto"  # auto | none | libvirt | proxmox
    libvirt_uri: str | None = None
    pve_node: str | None = None
    pve_ca: str | None = None
    insecure: bool = False
    root: str = "/"
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def detect(host: Host, cfg: BackendConfig) -> list[str]:
    """Backends to consult: the chosen one, or what this host evidently runs."""
    if cfg.name == "none":
        return []
    if cfg.name in NAMES:
        return [cfg.name]
    if cfg.name != "auto":
        raise UsageError(f"unknown backend {cfg.name!r}: choose auto, none, libvirt or proxmox")
    if host.exists("etc/pve"):
        return ["proxmox"]
    if cfg.libvirt_uri or cfg.env.get("VFCTL_LIBVIRT_URI"):
        return ["libvirt"]
    if host.live and any(
        host.exists(p) for p in ("run/libvirt/libvirt-sock", "run/libvirt/virtqemud-sock")
    ):
        return ["libvirt"]
    return []


def choose(host: Host, cfg: BackendConfig) -> str:
    """The one backend an attach/detach talks to; UsageError when none or several apply."""
    found = detect(host, cfg)
    if len(found) == 1:
        return found[0]
    raise UsageError(
        "no VM manager detected on this host: choose --backend libvirt or --backend proxmox"
        if not found
        else f"several VM managers detected ({', '.join(found)}): choose --backend"
    )


def create(name: str, cfg: BackendConfig, params: Mapping[str, Any] | None = None) -> Backend:
    """Connect a backend by name (imports its library only now)."""
    params = dict(params or {})
    if name == "libvirt":
        from vfctl.backends.libvirt import LibvirtBackend

        return LibvirtBackend.connect(params.get("uri") or cfg.libvirt_uri)
    if name == "proxmox":
        from vfctl.backends.proxmox import ProxmoxBackend

        if params.get("mode"):  # a plan's or journal's connection: the API the run used
            return ProxmoxBackend.from_params(params, env=cfg.env, root=cfg.root)
        return ProxmoxBackend.from_env(
            node=params.get("node") or cfg.pve_node,
            ca=cfg.pve_ca,
            insecure=cfg.insecure,
            env=cfg.env,
            root=cfg.root,
        )
    raise UsageError(f"unknown backend {name!r}")
