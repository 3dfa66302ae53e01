"""The libvirt backend: one connection, what it reads (domains' XML, networks), the protocol.

Decisions are in ``libvirt_plan`` (pure, from the ``Holding``s read here), the ops that
change domains in ``libvirt_ops`` (each re-reads the XML afterwards to verify what libvirt
did). ``libvirt`` is imported lazily so commands that never talk to libvirt do not need it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from vfctl.backends import libvirt_plan
from vfctl.backends.base import AttachRequest
from vfctl.backends.libvirt_plan import (
    DomainInfo,
    Holding,
    LibvirtFacts,
    attach_scopes,
    hostdev_networks,
    merge_attachments,
    pool_members,
    wanted_device,
)
from vfctl.backends.libvirt_xml import FoundDevice, NetworkXml, pci_devices
from vfctl.errors import BackendError, NotFoundError
from vfctl.model import PF, Attachment, PoolRef
from vfctl.plan import Action

URI_ENV = "VFCTL_LIBVIRT_URI"
DEFAULT_URI = "qemu:///system"
AFFECT = {"live": 1, "config": 2}  # VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG
XML_INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE
DOCTOR_HINT = "run `vfctl doctor` — the host needs an IOMMU and vfio-pci"
CONNECT_HINT = f"is libvirtd running? choose another with --libvirt-uri or {URI_ENV}"
_UUID = re.compile(r"^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$", re.I)
_LEVELS = {"VIR_ERR_NONE", "VIR_ERR_WARNING", "VIR_ERR_ERROR"}  # levels, not codes


def default_uri(uri: str | None = None) -> str:
    return uri or os.environ.get(URI_ENV) or DEFAULT_URI


# ---- errors --------------------------------------------------------------------------------


def _code_name(code: int | None) -> str:
    import libvirt

    for name in dir(libvirt):
        if name.startswith("VIR_ERR_") and name not in _LEVELS and getattr(libvirt, name) == code:
            return name
    return f"libvirt error {code}"


def _silent(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; vfctl reports them itself."""


def map_error(what: str, exc: Exception) -> BackendError | NotFoundError:
    """One line: what vfctl asked, libvirt's error code name and message; a hint where useful."""
    import libvirt

    assert isinstance(exc, libvirt.libvirtError)
    code = exc.get_error_code()
    text = (exc.get_error_message() or str(exc)).strip().replace("\n", " ")
    message = f"libvirt {what}: {_code_name(code)}: {text}"
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFoundError(message)
    hint = None
    if code == libvirt.VIR_ERR_CONFIG_UNSUPPORTED:
        hint = DOCTOR_HINT
    elif code in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
    ):
        hint = CONNECT_HINT
    return BackendError(message, hint=hint)


@contextmanager
def libvirt_errors(what: str) -> Iterator[None]:
    import libvirt

    try:
        yield
    except libvirt.libvirtError as exc:
        raise map_error(what, exc) from None


# ---- the backend ---------------------------------------------------------------------------


class LibvirtBackend:
    """One connection to a libvirt daemon (``qemu:///system`` unless told otherwise)."""

    name = "libvirt"

    def __init__(self, conn: Any, uri: str) -> None:
        self.conn = conn
        self.uri = uri
        self.warned: list[str] = []  # malformed elements skipped while reading domains

    def warn(self, text: str) -> None:
        if text not in self.warned:
            self.warned.append(text)

    # -- the protocol's optional capabilities --

    def warnings(self) -> list[str]:
        return list(self.warned)

    def pending(self) -> list[dict[str, Any]]:
        """libvirt applies live changes at once: nothing waits for a restart."""
        return []

    def pool_refs(self) -> dict[str, PoolRef]:
        """Proxmox-style mapping pools do not exist here (``pools`` has the hostdev networks)."""
        return {}

    @classmethod
    def connect(cls, uri: str | None = None) -> LibvirtBackend:
        try:
            import libvirt
        except ImportError:
            raise BackendError(
                "libvirt-python is not installed (pip install 'vfctl[libvirt]')",
                hint="or choose --backend proxmox",
            ) from None
        libvirt.registerErrorHandler(_silent, None)
        uri = default_uri(uri)
        with libvirt_errors(f"connect {uri}"):
            conn = libvirt.open(uri)
        return cls(conn, uri)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LibvirtBackend:
        """Reconnect from a journal's JSON parameters."""
        return cls.connect(params.get("uri"))

    def params(self) -> dict[str, Any]:
        return {"uri": self.uri}

    def close(self) -> None:
        import libvirt

        with suppress(libvirt.libvirtError):
            self.conn.close()

    # -- reading --

    def info(self, dom: Any) -> DomainInfo:
        with libvirt_errors("read domain"):
            return DomainInfo(
                dom.name(), dom.UUIDString(), bool(dom.isActive()), bool(dom.isPersistent())
            )

    def lookup(self, vm: str) -> Any:
        """A domain by name or UUID; NotFoundError (exit 3) otherwise."""
        import libvirt

        for how, arg in (("name", vm), ("uuid", vm if _UUID.fullmatch(vm) else None)):
            if arg is None:
                continue
            try:
                return (
                    self.conn.lookupByName(arg)
                    if how == "name"
                    else self.conn.lookupByUUIDString(arg)
                )
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise map_error(f"look up domain {vm}", exc) from None
        raise NotFoundError(f"VM {vm!r} not found on libvirt {self.uri}")

    def scope_xml(self, dom: Any, scope: str) -> str | None:
        """The domain's XML for one scope, or None when that scope does not exist."""
        info = self.info(dom)
        if scope == "live" and not info.active:
            return None
        if scope == "config" and not info.persistent:
            return None
        with libvirt_errors(f"read XML of domain {info.name}"):
            return str(dom.XMLDesc(XML_INACTIVE if scope == "config" else 0))

    def domain_holdings(self, dom: Any) -> list[Holding]:
        info = self.info(dom)
        out: list[Holding] = []
        for scope in ("config", "live"):
            xml = self.scope_xml(dom, scope)
            if xml is not None:
                out += [
                    Holding(info.name, info.uuid, scope, f) for f in pci_devices(xml, self.warn)
                ]
        return out

    def holdings(self) -> list[Holding]:
        """Every PCI-holding element in every domain, live and config."""
        import libvirt

        out: list[Holding] = []
        with libvirt_errors("list domains"):
            domains = self.conn.listAllDomains(0)
        for dom in domains:
            try:
                out += self.domain_holdings(dom)
            except NotFoundError:
                continue  # undefined while we looked
            except BackendError:
                if dom_gone(dom, libvirt):
                    continue
                raise
        return out

    def attachments(self) -> dict[str, list[Attachment]]:
        return merge_attachments(self.holdings())

    def networks(self) -> list[NetworkXml]:
        """Every network definition (live XML when active: it lists the pool's VFs)."""
        with libvirt_errors("list networks"):
            return [NetworkXml.from_xml(n.XMLDesc(0)) for n in self.conn.listAllNetworks(0)]

    def pools(self, pfs: Sequence[PF]) -> dict[str, str]:
        """PCI address (a PF, or one of its VFs) -> the hostdev network pooling it."""
        nets = self.networks()
        out = pool_members(nets, pfs)
        by_dev = hostdev_networks(nets)
        for pf in pfs:
            name = next((by_dev[d] for d in (*pf.netdevs, pf.netdev) if d in by_dev), None)
            if name is not None:
                out[pf.address] = name
        return out

    # -- planning: fetch, then decide purely --

    def plan_attach(self, req: AttachRequest) -> list[Action]:
        dom = self.lookup(req.vm)
        info = self.info(dom)
        wanted_device(req)  # a bad request fails before any domain is read
        attach_scopes(req.options, info)
        facts = LibvirtFacts(self.uri, info, self.holdings(), self.networks())
        return libvirt_plan.plan_attach(facts, req)

    def plan_detach(self, req: AttachRequest) -> list[Action]:
        dom = self.lookup(req.vm)
        facts = LibvirtFacts(self.uri, self.info(dom), self.domain_holdings(dom))
        return libvirt_plan.plan_detach(facts, req)

    def present(self, dom: Any, scope: str, address: str) -> list[FoundDevice]:
        """The elements of one scope of ``dom`` that hold ``address`` (none: scope absent)."""
        xml = self.scope_xml(dom, scope)
        return [] if xml is None else [f for f in pci_devices(xml) if f.address == address]


def dom_gone(dom: Any, libvirt: Any) -> bool:
    try:
        dom.UUIDString()
        dom.isActive()
    except libvirt.libvirtError as exc:
        return bool(exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)
    return False


__all__ = ["DomainInfo", "Holding", "LibvirtBackend", "attach_scopes", "pool_members"]
