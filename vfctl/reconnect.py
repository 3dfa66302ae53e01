"""Backends for ``vfctl recover``: the connection comes from this invocation, not the journal.

Why: a journal is a file on disk. If recover connected where the journal says (its PVE host,
its ``insecure`` flag, its token file), whoever can write that file could make root send the
API token to any TLS listener, or read any file as a "token". So the journal may only *name*
the connection its actions used; recover connects with the current flags and environment
(``VFCTL_PVE_*``, ``--pve-ca``, ``--insecure``, ``--libvirt-uri``) and refuses (exit 4) a
journal whose actions went to another host or asked for weaker TLS than this invocation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vfctl.backends import BackendConfig
from vfctl.errors import RefusedError, UsageError

if TYPE_CHECKING:
    from vfctl.backends.base import Backend
    from vfctl.backends.libvirt import LibvirtBackend
    from vfctl.backends.proxmox import ProxmoxBackend

Factory = Callable[[str, Mapping[str, Any]], "Backend"]

_RERUN = "run `vfctl recover` with the connection settings of the interrupted run"


def factory(cfg: BackendConfig) -> Factory:
    """A backend factory for recover's Context; the journal's params are only compared."""

    def make(name: str, journaled: Mapping[str, Any]) -> Backend:
        if name == "proxmox":
            return _proxmox(cfg, journaled)
        if name == "libvirt":
            return _libvirt(cfg, journaled)
        raise UsageError(f"the journal names an unknown backend {name!r}")

    return make


def _records(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out = []
    for r in data.get("actions") or []:
        while isinstance(r, Mapping):
            out.append(r)
            r = r.get("undo")
    return out


def check(cfg: BackendConfig, data: Mapping[str, Any]) -> None:
    """Before undoing anything: every connection the journal names must be this one's."""
    for r in _records(data):
        op, params = str(r.get("op", "")), r.get("params") or {}
        if op.startswith("proxmox."):
            conn = params.get("conn") if isinstance(params, Mapping) else None
            _proxmox_settings(cfg, conn if isinstance(conn, Mapping) else {})
        elif op.startswith("libvirt."):
            _libvirt_uri(cfg, params if isinstance(params, Mapping) else {})


def _proxmox(cfg: BackendConfig, journaled: Mapping[str, Any]) -> ProxmoxBackend:
    from vfctl.backends.proxmox import ProxmoxBackend
    from vfctl.backends.pve_client import PveApi
    from vfctl.host.open import open_host

    cur = _proxmox_settings(cfg, journaled)
    return ProxmoxBackend(PveApi(cur, cfg.env), cur, open_host(cfg.root))


def _proxmox_settings(cfg: BackendConfig, journaled: Mapping[str, Any]) -> Any:
    from vfctl.backends.pve_client import settings_from_env

    node = journaled.get("node")
    if node is not None and not isinstance(node, str):
        raise RefusedError("the journal's Proxmox node is not a name")
    cur = settings_from_env(node or cfg.pve_node, cfg.pve_ca, cfg.insecure, cfg.env)
    mode, host = journaled.get("mode"), journaled.get("host")
    if mode != cur.mode or (cur.mode == "https" and host != cur.host):
        was = f"https://{host}" if mode == "https" else f"pvesh ({mode})"
        raise RefusedError(
            f"the journal's Proxmox actions went to {was}, this invocation connects to "
            f"{cur.where}: not recovering through another API; {_RERUN}"
        )
    if journaled.get("insecure") is True and not cur.insecure:
        raise RefusedError(
            "the journal's Proxmox connection skipped TLS verification (--insecure) and this "
            f"invocation verifies: recover refuses to decide that from a file; {_RERUN}"
        )
    return cur


def _libvirt(cfg: BackendConfig, journaled: Mapping[str, Any]) -> LibvirtBackend:
    from vfctl.backends.libvirt import LibvirtBackend

    return LibvirtBackend.connect(_libvirt_uri(cfg, journaled))


def _libvirt_uri(cfg: BackendConfig, journaled: Mapping[str, Any]) -> str:
    from vfctl.backends.libvirt import default_uri

    uri = default_uri(cfg.libvirt_uri or cfg.env.get("VFCTL_LIBVIRT_URI"))
    if journaled.get("uri") not in (None, uri):
        raise RefusedError(
            f"the journal's libvirt actions went to {journaled.get('uri')!r}, this invocation "
            f"connects to {uri!r}: pass --libvirt-uri to recover if that is meant"
        )
    return uri
