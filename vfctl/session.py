"""One command's application state: the global options, the Host, its discovery, its backends.

A session is built once per invocation from plain values (no typer: the fast path for
``list --json`` builds one too). It opens the host once, connects each VM manager once (the
same instance plans, inventories and executes), and discovers on request: a read-only command
asks for :meth:`Session.model` once; the run flow (:mod:`vfctl.runflow`) discovers to plan and
once more to verify, and the history record reuses that second model.
"""

from __future__ import annotations

import os
import sys

from vfctl.errors import NotFoundError, UsageError, VfctlError
from vfctl.model import HostModel, PoolRef
from vfctl.record import dataclass

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

if TYPE_CHECKING:
    from vfctl.backends import BackendConfig
    from vfctl.backends.base import Backend
    from vfctl.backends.libvirt_pool import LibvirtPools
    from vfctl.backends.pve_pool import PvePools
    from vfctl.host.sysfs import Host
    from vfctl.plan import Context


@dataclass
class Options:
    """The global options (``--root``, ``--backend`` …), as plain values."""

    root: str = "/"
    verbose: int = 0
    backend: str = "auto"
    libvirt_uri: str | None = None
    pve_node: str | None = None
    pve_ca: str | None = None
    insecure: bool = False


def _stderr_warning(text: str) -> None:
    print(f"vfctl: warning: {text}", file=sys.stderr)


class Session:
    """The host, its discovery and its VM-manager connections for one command."""

    def __init__(self, opts: Options | None = None, **values: Any) -> None:
        self.opts = opts if opts is not None else Options(**values)
        self.warn: Callable[[str], None] = _stderr_warning
        self._host: Host | None = None
        self._backends: dict[str, Backend] = {}  # by name: the connection these options configure
        self._by_params: dict[tuple[str, str], Backend] = {}  # other connections a journal names
        self._model: tuple[tuple[bool, bool, bool, bool], HostModel] | None = None

    # ------------------------------------------------------------ host and options

    def host(self) -> Host:
        """The host under ``--root``, opened once (journals and messages carry absolute paths)."""
        if self._host is None:
            from vfctl.host.open import open_host

            if not os.path.isdir(self.opts.root):
                raise NotFoundError(f"host root {self.opts.root} does not exist")
            self._host = open_host(os.path.abspath(self.opts.root))
            if self.opts.verbose:
                from vfctl.pci import configspace

                if not getattr(configspace, "HAVE_C", False):
                    print(
                        "vfctl: C config-space parser not built; using the pure-Python parser",
                        file=sys.stderr,
                    )
        return self._host

    def config(self) -> BackendConfig:
        from vfctl.backends import BackendConfig

        o = self.opts
        return BackendConfig(
            name=o.backend,
            libvirt_uri=o.libvirt_uri,
            pve_node=o.pve_node,
            pve_ca=o.pve_ca,
            insecure=o.insecure,
            root=os.path.abspath(o.root),
        )

    def use_backend(self, name: str) -> None:
        """A command's own ``--backend`` (pool commands): also the one the inventory asks."""
        self.opts.backend = name

    def reverter_argv(self) -> list[str]:
        """The global options a later `vfctl confirm --expire` needs to reach the same host."""
        o = self.opts
        argv = ["--root", o.root, "--backend", o.backend]
        for flag, val in (
            ("--libvirt-uri", o.libvirt_uri),
            ("--pve-node", o.pve_node),
            ("--pve-ca", o.pve_ca),
        ):
            if val:
                argv += [flag, val]
        if o.insecure:
            argv.append("--insecure")
        return argv

    # ------------------------------------------------------------ backends

    def detected(self) -> list[str]:
        """The VM managers to consult: the chosen one, or what this host evidently runs."""
        from vfctl import backends

        return backends.detect(self.host(), self.config())

    def chosen(self) -> str:
        """The one VM manager an attach/detach talks to (UsageError when none or several)."""
        from vfctl import backends

        return backends.choose(self.host(), self.config())

    def backend(self, name: str) -> Backend:
        """The backend ``name`` on the configured connection, connected once per session."""
        b = self._backends.get(name)
        if b is None:
            from vfctl import backends

            b = self._backends[name] = backends.create(name, self.config())
        return b

    def configured_backend(self, name: str) -> Backend:
        """A backend a profile names: refused when the options rule it out."""
        from vfctl import backends

        cfg = self.config()
        if cfg.name == "none":
            raise UsageError("vfctl runs with --backend none")
        if cfg.name in backends.NAMES and cfg.name != name:
            raise UsageError(f"vfctl runs with --backend {cfg.name}")
        return self.backend(name)

    def connected(self) -> list[tuple[str, Backend]]:
        """The backends connected so far, in connection order."""
        return list(self._backends.items())

    def pool_backend(self, name: str | None) -> LibvirtPools | PvePools:
        """The pool side of a backend (default: the chosen one), on the same connection."""
        from vfctl import backends

        if name is not None and name not in backends.NAMES:
            raise UsageError(f"invalid --backend {name!r}: libvirt or proxmox")
        from vfctl.profile_pools import wrap

        return wrap(self.backend(name or self.chosen()))

    def executor_backend(self, name: str, params: Mapping[str, Any]) -> Backend:
        """The engine's backend for an action's connection: the planning instance when the
        connection is the same, else one more instance kept for the rest of the session."""
        import json

        want = json.dumps(dict(params), sort_keys=True)
        for n, b in self._backends.items():
            if n == name and json.dumps(b.params(), sort_keys=True) == want:
                return b
        key = (name, want)
        if key not in self._by_params:
            from vfctl import backends

            self._by_params[key] = backends.create(name, self.config(), params)
        return self._by_params[key]

    def context(self, progress: Callable[[str], None] | None = None) -> Context:
        """An engine context whose ops use this session's backends."""
        from vfctl import plan

        return plan.Context(self.host(), backend_factory=self.executor_backend, progress=progress)

    @staticmethod
    def backend_report(b: Backend | None) -> dict[str, Any]:
        """What a backend has to say after planning and executing: pending changes, warnings."""
        out: dict[str, Any] = {}
        if b is not None:
            if b.pending():
                out["pending"] = b.pending()
            if b.warnings():
                out["backend_warnings"] = b.warnings()
        return out

    def inventory(self, lenient: bool = False) -> dict[str, list[Any]]:
        """attached_to for every VF, from every backend this host has.

        ``lenient`` (read-only listings): a VM manager that was only auto-detected and does
        not answer costs a warning, not the listing. Mutating commands stay strict: their
        in-use checks must not pass just because the VM manager could not be asked.
        """
        if self.opts.backend == "none":  # detected() is [] then: no backend module to load
            return {}
        cfg = self.config()
        explicit = cfg.name != "auto" or bool(cfg.libvirt_uri)
        out: dict[str, list[Any]] = {}
        for name in self.detected():
            try:
                atts_by_addr = self.backend(name).attachments()
            except VfctlError as e:
                if explicit or not lenient:
                    raise
                self.warn(f"{name} inventory unavailable ({e.message}); attached_to is incomplete")
                continue
            if lenient:  # a read-only listing: what the VM manager holds that PVE would reject
                for w in self._backends[name].warnings():
                    self.warn(w)
            for addr, atts in atts_by_addr.items():
                out.setdefault(addr, []).extend(atts)
        return out

    def pool_refs(self) -> dict[str, PoolRef]:
        """VF address -> PoolRef from the connected backends (PVE mappings; libvirt has none)."""
        out: dict[str, PoolRef] = {}
        for _name, b in self.connected():
            out.update(b.pool_refs())
        return out

    def pools(self, m: HostModel) -> dict[str, str] | None:
        """PCI address -> hostdev network pooling it; None when no connected backend has pools."""
        out: dict[str, str] | None = None
        for _name, b in self.connected():
            try:
                got = b.pools(m.pfs)
            except VfctlError as e:
                self.warn(f"hostdev networks unavailable ({e.message})")
                got = {}
            if got is not None:  # None: this VM manager has no such pools
                out = {**(out or {}), **got}
        return out

    # ------------------------------------------------------------ discovery

    def model(
        self,
        with_devices: bool = False,
        with_backends: bool = True,
        lenient: bool = False,
        inuse: bool = False,
    ) -> HostModel:
        """The host's model, discovered once per session and reused for what it covers."""
        if self._model is not None:
            (dev, be, len_, use), m = self._model
            if (
                (dev or not with_devices)
                and (be or not with_backends)
                and (lenient or not len_)
                and (use or not inuse)
            ):
                return m
        return self.rediscover(with_devices, with_backends, lenient, inuse)

    def rediscover(
        self,
        with_devices: bool = False,
        with_backends: bool = True,
        lenient: bool = False,
        inuse: bool = False,
    ) -> HostModel:
        """Discover now (the host changed, or the lock was just taken) and keep the result.

        ``inuse``: also collect the in-use facts the planners' refusals read.
        """
        from vfctl import discover as disc
        from vfctl.host import netlink

        h = self.host()
        self._model = None
        inv = self.inventory(lenient) if with_backends else {}  # one round of VM-manager calls
        pooled = self.pool_refs() if with_backends else {}
        h.settle()  # a simulated host runs pending probes first, as a kernel would by itself
        m = disc.discover(h, inv, with_devices=with_devices, pools=pooled, inuse=inuse)
        info = netlink.vf_info_all(h, [pf.netdev for pf in m.pfs if pf.netdev and pf.num_vfs])
        m = disc.with_vf_info(m, info) if any(info.values()) else m
        self._model = ((with_devices, with_backends, lenient, inuse), m)
        return m

    def forget_model(self) -> None:
        """The host may have changed (a run, a rollback): the next model is discovered."""
        self._model = None
