"""VF pools on libvirt: a persistent, autostarted ``<forward mode='hostdev'>`` network per pool.

The network lists exactly the pool's VFs as ``<address type='pci'/>`` (never ``<pf dev>``:
the pool is what was asked, not every VF of the PF), ``managed='no'`` because vfctl binds
them to vfio-pci itself, ``<vlan>`` when the pool has one (libvirt programs it on the VF it
hands out, libvirt ``networkAllocatePort``), and vfctl's mark in ``<metadata>`` (the PF and the
pool's settings). A network without that mark is never changed or deleted. Guests draw a VF
with ``<interface type='network'><source network='NAME'/>``.

Every op re-reads the network or domain before writing and compares with what was planned,
so a rollback or a ``recover`` never overwrites someone else's change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vfctl.backends.libvirt import (
    AFFECT,
    DomainInfo,
    LibvirtBackend,
    attach_scopes,
    libvirt_errors,
)
from vfctl.backends.libvirt_xml import (
    ForwardAddressXml,
    NetworkInterfaceXml,
    NetworkXml,
    network_interfaces,
    pci_devices,
)
from vfctl.errors import BackendError, NotFoundError, RefusedError, UsageError
from vfctl.model import PF, VF
from vfctl.plan import Action, Context, op
from vfctl.pools import PoolSettings, PoolView

_MAC_LEN = 17
NET_INACTIVE = 1  # VIR_NETWORK_XML_INACTIVE: the definition, not the running pool


def summary(net: NetworkXml | None) -> dict[str, Any] | None:
    """What a pool network says, in a form plans store and ops compare."""
    if net is None:
        return None
    return {
        "pool": net.pool_pf,
        "settings": net.pool_settings,
        "mode": net.forward_mode,
        "addresses": [a.pci_address for a in net.addresses],
        "vlan": net.vlan_tag,
    }


def _members(net: NetworkXml) -> set[str]:
    return {a.pci_address for a in net.addresses if a.pci_address}


def pool_network(
    name: str, pf: PF, members: Sequence[str], s: PoolSettings, uuid: str | None
) -> NetworkXml:
    return NetworkXml(
        name=name,
        uuid=uuid,
        forward_mode="hostdev",
        forward_managed=False,
        addresses=[ForwardAddressXml.of(a) for a in members],
        vlan_tag=s.vlan if s.vlan else None,
        pool_pf=pf.address,
        pool_settings=s.encode(),
    )


class LibvirtPools:
    """Pool objects of one libvirt connection (the backend's, shared with attach/detach)."""

    name = "libvirt"

    def __init__(self, be: LibvirtBackend) -> None:
        self.be = be
        self.warnings: list[str] = []

    # ---- reading -------------------------------------------------------------------------

    def network(self, name: str) -> tuple[Any, NetworkXml] | None:
        import libvirt

        try:
            net = self.be.conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return None
            raise BackendError(f"libvirt look up network {name}: {exc}") from None
        with libvirt_errors(f"read network {name}"):
            return net, NetworkXml.from_xml(net.XMLDesc(NET_INACTIVE))

    def _users(self, members: Mapping[str, set[str]]) -> dict[str, set[tuple[str, str]]]:
        """network -> {(domain, scope)} of every interface drawing from it.

        A running domain's live XML shows the VF libvirt handed out as ``<interface
        type='hostdev'>`` with its PCI address (seen on the lab's real kernel, libvirt 9.0),
        not always with ``source network=``: a live holder of a member address counts too.
        """
        out: dict[str, set[tuple[str, str]]] = {}
        by_addr = {a: n for n, addrs in members.items() for a in addrs}
        with libvirt_errors("list domains"):
            domains = self.be.conn.listAllDomains(0)
        for dom in domains:
            info = self.be.info(dom)
            for scope in ("config", "live"):
                xml = self.be.scope_xml(dom, scope)
                for f in network_interfaces(xml) if xml else ():
                    out.setdefault(f.network, set()).add((info.name, scope))
                for d in pci_devices(xml) if xml and scope == "live" else ():
                    if d.address in by_addr:
                        out.setdefault(by_addr[d.address], set()).add((info.name, "live"))
        return out

    def views(self) -> list[PoolView]:
        with libvirt_errors("list networks"):
            nets = self.be.conn.listAllNetworks(0)
        defs = []
        for n in nets:
            with libvirt_errors("read network"):
                defs.append((NetworkXml.from_xml(n.XMLDesc(NET_INACTIVE)), bool(n.isActive())))
        defs = [(x, a) for x, a in defs if x.pool_pf and x.forward_mode == "hostdev" and x.name]
        users = self._users({str(x.name): _members(x) for x, _a in defs}) if defs else {}
        out = []
        for x, active in defs:
            name = str(x.name)
            out.append(
                PoolView(
                    name=name,
                    backend="libvirt",
                    pf=x.pool_pf,
                    members=tuple(a.pci_address for a in x.addresses if a.pci_address),
                    settings=PoolSettings.decode(x.pool_settings),
                    vms=tuple(sorted({d for d, _s in users.get(name, set())})),
                    active=active,
                )
            )
        return sorted(out, key=lambda v: v.name)

    def claimed(self, pf: PF) -> dict[str, str]:
        """VF address -> the hostdev network (vfctl's or not) that hands it out."""
        return {a: n for a, n in self.be.pools([pf]).items() if a != pf.address}

    def _mine(self, name: str) -> tuple[Any, NetworkXml] | None:
        found = self.network(name)
        if found is not None and found[1].pool_pf is None:
            raise RefusedError(
                f"libvirt network {name} exists and is not a vfctl pool; vfctl never changes it"
            )
        return found

    # ---- planning ------------------------------------------------------------------------

    def _put(
        self, name: str, want: NetworkXml | None, have: NetworkXml | None, what: str
    ) -> Action:
        p = {"uri": self.be.uri, "name": name}
        fwd = {**p, "xml": want.to_xml() if want else None, "expect": summary(have)}
        back = {**p, "xml": have.to_xml() if have else None, "expect": summary(want)}
        undo_what = "delete" if have is None else "restore" if want else "re-create"
        return Action(
            "libvirt_pool.put",
            f"network {name}",
            what,
            fwd,
            Action("libvirt_pool.put", f"network {name}", undo_what, back),
        )

    def plan_put(
        self, name: str, pf: PF, members: Sequence[VF], s: PoolSettings, create: bool
    ) -> list[Action]:
        """The network listing exactly ``members`` with settings ``s``; [] when it already does."""
        found = self._mine(name)
        if found is None and not create:
            raise NotFoundError(f"no vfctl pool {name!r} on libvirt {self.be.uri}")
        have = found[1] if found else None
        if have is not None and have.pool_pf != pf.address:
            raise RefusedError(
                f"pool {name} is made of VFs of {have.pool_pf}, not {pf.address}; one PF per pool"
            )
        want = pool_network(name, pf, [v.address for v in members], s, have.uuid if have else None)
        if have is not None and summary(have) == summary(want):
            return []
        if not members:
            raise UsageError(f"pool {name} would have no VFs; `vfctl pool delete {name}` instead")
        what = (
            f"define hostdev network, {len(members)} VFs"
            + (f", vlan {s.vlan}" if s.vlan else "")
            + ", autostart"
            if have is None
            else f"set {len(members)} VFs" + (f", vlan {s.vlan}" if s.vlan else "")
        )
        return [self._put(name, want, have, what)]

    def plan_delete(self, name: str, force: bool) -> list[Action]:
        found = self._mine(name)
        if found is None:
            return []
        users = self._users({name: _members(found[1])}).get(name, set())
        running = sorted(d for d, sc in users if sc == "live")
        if running:
            raise RefusedError(
                f"pool {name} is in use by running domain(s) {', '.join(running)}; "
                "stop them first (not even --force deletes it under them)"
            )
        doms = sorted({d for d, _sc in users})
        if doms and not force:
            raise RefusedError(
                f"pool {name} is referenced by domain(s) {', '.join(doms)}; "
                "--force detaches it from them and deletes it",
                override="--force",
            )
        actions: list[Action] = []
        for d in doms:
            actions += self.plan_detach(d, name, {})
        return [*actions, self._put(name, None, found[1], "undefine (and stop)")]

    def _iface_action(self, verb: str, info: DomainInfo, scope: str, net: str, xml: str) -> Action:
        p = {"uri": self.be.uri, "domain": info.uuid, "vm": info.name, "scope": scope}
        p |= {"network": net, "xml": xml}
        other = "detach" if verb == "attach" else "attach"
        t = f"{info.name} network {net}"
        return Action(
            f"libvirt_pool.iface_{verb}",
            t,
            f"{verb} <interface type=network> ({scope})",
            p,
            Action(f"libvirt_pool.iface_{other}", t, f"{other} <interface> ({scope})", p),
        )

    def plan_attach(self, vm: str, name: str, options: Mapping[str, Any]) -> list[Action]:
        if self._mine(name) is None and not options.get("planned"):
            raise NotFoundError(f"no vfctl pool {name!r} on libvirt {self.be.uri}")
        dom = self.be.lookup(vm)
        info = self.be.info(dom)
        mac = options.get("mac")
        if mac is not None and len(str(mac)) != _MAC_LEN:
            raise UsageError(f"invalid --mac {mac!r}")
        xml = NetworkInterfaceXml(network=name, mac=mac).to_xml()
        out = []
        for scope in attach_scopes(options, info):
            have = self.be.scope_xml(dom, scope) or "<domain/>"
            if any(f.network == name for f in network_interfaces(have)):
                continue  # one interface per pool and domain: already there
            out.append(self._iface_action("attach", info, scope, name, xml))
        return out

    def plan_detach(self, vm: str, name: str, options: Mapping[str, Any]) -> list[Action]:
        dom = self.be.lookup(vm)
        info = self.be.info(dom)
        live, config = options.get("live"), options.get("config")
        scopes = [s for s, on in (("live", live), ("config", config)) if on] or ["live", "config"]
        out = []
        for scope in scopes:
            xml = self.be.scope_xml(dom, scope)
            for f in network_interfaces(xml) if xml else ():
                if f.network == name:
                    out.append(self._iface_action("detach", info, scope, name, f.xml))
        return out

    # ---- doing (the ops) -----------------------------------------------------------------

    def apply_put(self, ctx: Context, p: Mapping[str, Any]) -> None:
        name = str(p["name"])
        want = NetworkXml.from_xml(p["xml"]) if p.get("xml") else None
        found = self.network(name)
        have = found[1] if found else None
        if have is not None and have.pool_pf is None:
            raise RefusedError(f"libvirt network {name} is not a vfctl pool; not changing it")
        if summary(have) != summary(want) and summary(have) != p.get("expect"):
            raise RefusedError(f"libvirt network {name} changed since it was planned; not writing")
        import libvirt

        with libvirt_errors(f"write network {name}"):
            if want is None:
                if found is not None:
                    if found[0].isActive():
                        found[0].destroy()
                    found[0].undefine()
                return
            if summary(have) != summary(want):
                if have is not None and want.uuid is None:
                    want.uuid = have.uuid
                net = self.be.conn.networkDefineXML(want.to_xml())
            else:
                net = found[0] if found else self.be.conn.networkLookupByName(name)
            net.setAutostart(1)
            if not net.isActive():
                net.create()
            elif have is not None and summary(have) != summary(want):
                try:
                    ports = net.listAllPorts(0)
                except libvirt.libvirtError:
                    ports = []
                if ports:
                    ctx.warnings.append(
                        f"network {name} has {len(ports)} guest(s) attached: its running pool "
                        "changes when the network is next restarted (the definition is updated)"
                    )
                else:  # restart so the running pool is the defined one
                    net.destroy()
                    net.create()

    def _scope_ifaces(self, dom: Any, scope: str, net: str) -> list[str]:
        xml = self.be.scope_xml(dom, scope)
        return [f.xml for f in network_interfaces(xml) if f.network == net] if xml else []

    def apply_iface(self, p: Mapping[str, Any], attach: bool) -> None:
        dom = self.be.lookup(str(p["domain"]))
        scope, net = str(p["scope"]), str(p["network"])
        present = self._scope_ifaces(dom, scope, net)
        if attach:
            if present:
                return
            with libvirt_errors(f"attach network {net} to {p['vm']} ({scope})"):
                dom.attachDeviceFlags(p["xml"], AFFECT[scope])
            if not self._scope_ifaces(dom, scope, net):
                raise BackendError(f"libvirt attach of network {net} to {p['vm']} did not hold")
            return
        if not present:
            return
        exact = p["xml"] if p["xml"] in present else present[0]
        with libvirt_errors(f"detach network {net} from {p['vm']} ({scope})"):
            dom.detachDeviceFlags(exact, AFFECT[scope])


def _pools(ctx: Context, p: Mapping[str, Any]) -> LibvirtPools:
    be = ctx.backend("libvirt", {"uri": p["uri"]})
    if not isinstance(be, LibvirtBackend):
        raise BackendError("the libvirt backend factory returned something else")
    return LibvirtPools(be)


@op("libvirt_pool.put")
def _op_put(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_put(ctx, p)


@op("libvirt_pool.iface_attach")
def _op_iface_attach(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_iface(p, attach=True)


@op("libvirt_pool.iface_detach")
def _op_iface_detach(ctx: Context, p: Mapping[str, Any]) -> None:
    _pools(ctx, p).apply_iface(p, attach=False)
