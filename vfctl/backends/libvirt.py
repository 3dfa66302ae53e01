"""The libvirt backend: inventory of VFs held by domains, and attach/detach as journaled plans.

vfctl does not trust libvirt for idempotency or conflicts (libvirt 9.0 accepts the same
``<interface type='hostdev'>`` twice, and "detaches" a ``<hostdev>`` from a domain that holds
the VF as ``<interface>`` by doing nothing). So every plan starts from the live and inactive
XML of every domain, finds the VF by host PCI address whatever the element, and every op
re-reads the XML afterwards to verify what libvirt did. ``libvirt`` is imported lazily so
commands that never talk to libvirt do not need it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.backends.libvirt_xml import (
    FoundDevice,
    HostdevInterfaceXml,
    HostdevXml,
    NetworkXml,
    pci_devices,
)
from vfctl.errors import BackendError, NotFoundError, RefusedError, UsageError
from vfctl.model import PF, Attachment
from vfctl.plan import Action, Context, op

URI_ENV = "VFCTL_LIBVIRT_URI"
DEFAULT_URI = "qemu:///system"
AFFECT = {"live": 1, "config": 2}  # VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG
XML_INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE
LIVE_DETACH_WAIT = 10.0  # seconds the guest gets to release a device after libvirt's own wait
DOCTOR_HINT = "run `vfctl doctor` — the host needs an IOMMU and vfio-pci"
CONNECT_HINT = f"is libvirtd running? choose another with --libvirt-uri or {URI_ENV}"
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
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
def _libvirt_errors(what: str) -> Iterator[None]:
    import libvirt

    try:
        yield
    except libvirt.libvirtError as exc:
        raise map_error(what, exc) from None


# ---- what the domains hold -----------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """One element holding a host PCI function in one scope ("live"/"config") of one domain."""

    vm: str
    uuid: str
    scope: str
    found: FoundDevice


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    active: bool
    persistent: bool


def merge_attachments(holdings: Iterable[Holding]) -> dict[str, list[Attachment]]:
    """One Attachment per (address, domain, element kind), with its live/config flags."""
    flags: dict[tuple[str, str, str, str], set[str]] = {}
    for h in holdings:
        flags.setdefault((h.found.address, h.uuid, h.vm, h.found.element), set()).add(h.scope)
    out: dict[str, list[Attachment]] = {}
    for (address, uuid, vm, element), scopes in sorted(flags.items()):
        out.setdefault(address, []).append(
            Attachment(
                "libvirt", vm, uuid, element, live="live" in scopes, config="config" in scopes
            )
        )
    return out


def hostdev_networks(networks: Iterable[NetworkXml]) -> dict[str, str]:
    """PF netdev -> name of the libvirt network that pools its VFs (forward mode hostdev)."""
    return {n.pf_dev: n.name or "" for n in networks if n.forward_mode == "hostdev" and n.pf_dev}


def pool_members(networks: Sequence[NetworkXml], pfs: Iterable[PF]) -> dict[str, str]:
    """VF address -> hostdev network name: VFs of a pool's ``<pf dev>`` plus listed addresses."""
    by_netdev = hostdev_networks(networks)
    out: dict[str, str] = {}
    for pf in pfs:
        name = next((by_netdev[d] for d in pf.netdevs if d in by_netdev), None)
        if name is None and pf.netdev in by_netdev:
            name = by_netdev[pf.netdev]
        for vf in pf.vfs if name is not None else ():
            out[vf.address] = name or ""
    for n in networks:
        if n.forward_mode == "hostdev":
            for a in n.addresses:
                if a.pci_address:
                    out[a.pci_address] = n.name or ""
    return out


# ---- choices (pure) ------------------------------------------------------------------------


def decide_managed(req: AttachRequest) -> bool:
    """``managed='no'`` when vfctl already bound the VF to vfio-pci, so libvirt leaves it there."""
    managed = req.options.get("managed")
    if managed is not None:
        return bool(managed)
    return not (req.vf.driver == "vfio-pci" or req.vf.driver_override == "vfio-pci")


def wanted_device(req: AttachRequest) -> HostdevXml | HostdevInterfaceXml:
    """The device element the request asks for."""
    mode = req.options.get("mode") or "hostdev"
    mac = req.options.get("mac")
    vlan = req.options.get("vlan")
    managed = decide_managed(req)
    if mode == "hostdev":
        if mac is not None or vlan is not None:
            raise UsageError(
                "--mac/--vlan need --mode interface (for hostdev, set them on the "
                "VF with `vfctl set`)"
            )
        dev: HostdevXml | HostdevInterfaceXml = HostdevXml(managed=managed)
    elif mode == "interface":
        if mac is None:
            current = (req.vf.settings.mac or "").lower()
            mac = current if current and current != "00:00:00:00:00:00" else None
        if mac is not None and not _MAC.fullmatch(str(mac).lower()):
            raise UsageError(f"invalid MAC address {mac!r}: expected xx:xx:xx:xx:xx:xx")
        if vlan is not None and not (0 <= int(vlan) <= 4095):
            raise UsageError(f"invalid VLAN {vlan!r}: expected 0-4095")
        dev = HostdevInterfaceXml(
            managed=managed,
            driver_name="vfio",
            mac=None if mac is None else str(mac).lower(),
            vlan_tag=None if vlan is None else int(vlan),
        )
    else:
        raise UsageError(f"invalid mode {mode!r}: expected hostdev or interface")
    dev.set_source_address(req.vf.address)
    return dev


def attach_scopes(options: Mapping[str, Any], dom: DomainInfo) -> list[str]:
    """Default: persistent config, plus live when the domain runs; or exactly what was asked."""
    live, config = options.get("live"), options.get("config")
    if live or config:
        scopes = [s for s, on in (("config", config), ("live", live)) if on]
    else:
        scopes = [
            s
            for s, ok in (
                ("config", config is not False and dom.persistent),
                ("live", live is not False and dom.active),
            )
            if ok
        ]
    if not scopes:
        raise UsageError(f"nothing to do for domain {dom.name}: no live or config scope applies")
    if "live" in scopes and not dom.active:
        raise RefusedError(
            f"domain {dom.name} is not running: a live change needs a running domain (drop --live)"
        )
    if "config" in scopes and not dom.persistent:
        raise RefusedError(
            f"domain {dom.name} is transient: it has no persistent config (use --live)"
        )
    return scopes


def describe(dev: HostdevXml | HostdevInterfaceXml) -> str:
    if isinstance(dev, HostdevXml):
        return f"<hostdev managed={'yes' if dev.managed else 'no'}>"
    extra = "".join(
        f" {k}={v}" for k, v in (("mac", dev.mac), ("vlan", dev.vlan_tag)) if v is not None
    )
    return f"<interface type=hostdev managed={'yes' if dev.managed else 'no'}{extra}>"


def _matches(found: FoundDevice, want: HostdevXml | HostdevInterfaceXml) -> bool:
    """The element the VF already has is the one asked for (kind, and MAC/VLAN when given)."""
    if found.element != want.TAG:
        return False
    if isinstance(want, HostdevInterfaceXml):
        have = found.device
        assert isinstance(have, HostdevInterfaceXml)
        if want.mac is not None and (have.mac or "").lower() != want.mac:
            return False
        if want.vlan_tag is not None and (have.vlan_tag or 0) != want.vlan_tag:  # none: untagged
            return False
    return True


# ---- the backend ---------------------------------------------------------------------------


class LibvirtBackend:
    """One connection to a libvirt daemon (``qemu:///system`` unless told otherwise)."""

    name = "libvirt"

    def __init__(self, conn: Any, uri: str) -> None:
        self.conn = conn
        self.uri = uri
        self.warnings: list[str] = []  # malformed elements skipped while reading domains

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

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
        with _libvirt_errors(f"connect {uri}"):
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

    def _info(self, dom: Any) -> DomainInfo:
        with _libvirt_errors("read domain"):
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
        info = self._info(dom)
        if scope == "live" and not info.active:
            return None
        if scope == "config" and not info.persistent:
            return None
        with _libvirt_errors(f"read XML of domain {info.name}"):
            return str(dom.XMLDesc(XML_INACTIVE if scope == "config" else 0))

    def domain_holdings(self, dom: Any) -> list[Holding]:
        info = self._info(dom)
        out: list[Holding] = []
        for scope in ("config", "live"):
            xml = self.scope_xml(dom, scope)
            if xml is not None:
                out += [
                    Holding(info.name, info.uuid, scope, f) for f in pci_devices(xml, self._warn)
                ]
        return out

    def holdings(self) -> list[Holding]:
        """Every PCI-holding element in every domain, live and config."""
        import libvirt

        out: list[Holding] = []
        with _libvirt_errors("list domains"):
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
        with _libvirt_errors("list networks"):
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

    # -- planning --

    def _action(
        self,
        verb: str,
        info: DomainInfo,
        scope: str,
        address: str,
        xml: str,
        desc: str,
        undo: bool = True,
    ) -> Action:
        params = {
            "uri": self.uri,
            "domain": info.uuid,
            "vm": info.name,
            "scope": scope,
            "address": address,
            "xml": xml,
        }
        inverse = "detach" if verb == "attach" else "attach"
        target = f"{info.name} {address}"
        return Action(
            f"libvirt.{verb}",
            target,
            f"{verb} {desc} ({scope})",
            params,
            Action(f"libvirt.{inverse}", target, f"{inverse} {desc} ({scope})", params)
            if undo
            else None,
        )

    def _detach_actions(
        self, holdings: Iterable[Holding], infos: Mapping[str, DomainInfo]
    ) -> list[Action]:
        order = {"live": 0, "config": 1}
        return [
            self._action(
                "detach",
                infos[h.uuid],
                h.scope,
                h.found.address,
                h.found.xml,
                describe(h.found.device),
            )
            for h in sorted(holdings, key=lambda h: (h.uuid, order[h.scope]))
        ]

    def plan_attach(self, req: AttachRequest) -> list[Action]:
        dom = self.lookup(req.vm)
        info = self._info(dom)
        want = wanted_device(req)
        scopes = attach_scopes(req.options, info)
        address = req.vf.address
        held = [h for h in self.holdings() if h.found.address == address]
        others = [h for h in held if h.uuid != info.uuid]
        label = f"{req.pf.netdev or req.pf.address} vf{req.vf.index} ({address})"
        if others and not req.force:
            where = ", ".join(sorted({f"{h.vm} ({h.scope})" for h in others}))
            raise RefusedError(
                f"{label} is attached to another domain: {where}; --force moves it",
                override="--force",
            )
        hb = req.vf.held_by  # the running truth: a QEMU (of any manager) has its group open
        if hb is not None and hb.vm != info.name and not others and not req.force:
            raise RefusedError(
                f"{label} is held by {hb.describe()}, which no domain here names; "
                "--force attaches it anyway",
                override="--force",
            )
        pool = pool_members(self.networks(), [req.pf]).get(address)
        if pool is not None and not req.force:
            raise RefusedError(
                f"{label} belongs to libvirt hostdev network {pool!r}: a guest using that "
                "network may be handed the same VF; --force attaches it anyway",
                override="--force",
            )
        infos = {info.uuid: info}
        for h in others:
            infos.setdefault(h.uuid, DomainInfo(h.vm, h.uuid, True, True))
        actions = self._detach_actions(others, infos)
        xml = want.to_xml()
        for scope in scopes:
            mine = [h for h in held if h.uuid == info.uuid and h.scope == scope]
            if mine and all(_matches(h.found, want) for h in mine):
                continue  # already here: no change
            if mine and not req.force:
                raise RefusedError(
                    f"{label} is already in {info.name} ({scope}) as "
                    f"{describe(mine[0].found.device)}, not {describe(want)}; "
                    "--force replaces it",
                    override="--force",
                )
            actions += self._detach_actions(mine, infos)
            actions.append(self._action("attach", info, scope, address, xml, describe(want)))
        return actions

    def plan_detach(self, req: AttachRequest) -> list[Action]:
        dom = self.lookup(req.vm)
        info = self._info(dom)
        live, config = req.options.get("live"), req.options.get("config")
        scopes = (
            {s for s, on in (("live", live), ("config", config)) if on}
            if (live or config)
            else {"live", "config"}
        )
        mine = [
            h
            for h in self.domain_holdings(dom)
            if h.found.address == req.vf.address and h.scope in scopes
        ]
        return self._detach_actions(mine, {info.uuid: info})

    # -- doing (called by the ops) --

    def _present(self, dom: Any, scope: str, address: str) -> list[FoundDevice]:
        xml = self.scope_xml(dom, scope)
        return [] if xml is None else [f for f in pci_devices(xml) if f.address == address]

    def apply_attach(self, p: Mapping[str, Any]) -> None:
        dom = self.lookup(p["domain"])
        scope, address = p["scope"], p["address"]
        if self._present(dom, scope, address):
            return  # idempotent: a rerun or an undo of a half-done detach
        with _libvirt_errors(f"attach {address} to {p['vm']} ({scope})"):
            dom.attachDeviceFlags(p["xml"], AFFECT[scope])
        if not self._present(dom, scope, address):
            raise BackendError(
                f"libvirt attach {address} to {p['vm']} ({scope}) reported "
                "success but the domain XML does not hold it"
            )

    def apply_detach(self, p: Mapping[str, Any]) -> None:
        dom = self.lookup(p["domain"])
        scope, address = p["scope"], p["address"]
        present = self._present(dom, scope, address)
        if not present:
            return  # idempotent
        exact = next((f for f in present if f.xml == p["xml"]), present[0])
        with _libvirt_errors(f"detach {address} from {p['vm']} ({scope})"):
            dom.detachDeviceFlags(exact.xml, AFFECT[scope])
        deadline = time.monotonic() + (LIVE_DETACH_WAIT if scope == "live" else 0.0)
        while True:  # a live detach completes when the guest releases the device
            now = self._present(dom, scope, address)
            if len(now) < len(present):
                return
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"libvirt detach {address} from {p['vm']} ({scope}) "
                    "reported success but the domain XML still holds it"
                )
            time.sleep(0.2)


def dom_gone(dom: Any, libvirt: Any) -> bool:
    try:
        dom.UUIDString()
        dom.isActive()
    except libvirt.libvirtError as exc:
        return bool(exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)
    return False


def _backend(ctx: Context, p: Mapping[str, Any]) -> LibvirtBackend:
    be = ctx.backend("libvirt", {"uri": p["uri"]})
    assert isinstance(be, LibvirtBackend)
    return be


@op("libvirt.attach")
def _op_attach(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).apply_attach(p)


@op("libvirt.detach")
def _op_detach(ctx: Context, p: Mapping[str, Any]) -> None:
    _backend(ctx, p).apply_detach(p)
