"""libvirt attach/detach planning: pure functions of (domain facts, request) -> actions.

vfctl does not trust libvirt for idempotency or conflicts (libvirt 9.0 accepts the same
``<interface type='hostdev'>`` twice, and "detaches" a ``<hostdev>`` from a domain that holds
the VF as ``<interface>`` by doing nothing). So a plan starts from every domain's live and
inactive XML as ``Holding``s (fetched by ``libvirt.LibvirtBackend``), finds the VF by host
PCI address whatever the element, and decides here without a connection: tests pass
literal holdings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfctl.backends.base import AttachRequest
from vfctl.backends.libvirt_xml import (
    FoundDevice,
    HostdevInterfaceXml,
    HostdevXml,
    NetworkXml,
)
from vfctl.errors import RefusedError, UsageError
from vfctl.model import PF, Attachment
from vfctl.plan import Action

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


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


@dataclass(frozen=True)
class LibvirtFacts:
    """What a plan decides from: the target domain, what every domain holds, the networks."""

    uri: str
    domain: DomainInfo
    holdings: Sequence[Holding]  # attach: every domain's; detach: the target domain's
    networks: Sequence[NetworkXml] = ()


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


def detach_scopes(options: Mapping[str, Any]) -> set[str]:
    """What ``--live``/``--config`` name, or both scopes."""
    live, config = options.get("live"), options.get("config")
    if live or config:
        return {s for s, on in (("live", live), ("config", config)) if on}
    return {"live", "config"}


def describe(dev: HostdevXml | HostdevInterfaceXml) -> str:
    if isinstance(dev, HostdevXml):
        return f"<hostdev managed={'yes' if dev.managed else 'no'}>"
    extra = "".join(
        f" {k}={v}" for k, v in (("mac", dev.mac), ("vlan", dev.vlan_tag)) if v is not None
    )
    return f"<interface type=hostdev managed={'yes' if dev.managed else 'no'}{extra}>"


def matches(found: FoundDevice, want: HostdevXml | HostdevInterfaceXml) -> bool:
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


def device_action(
    uri: str,
    verb: str,
    info: DomainInfo,
    scope: str,
    address: str,
    xml: str,
    desc: str,
    undo: bool = True,
) -> Action:
    """A ``libvirt.attach``/``libvirt.detach`` of one element in one scope, with its inverse."""
    params = {
        "uri": uri,
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


def detach_actions(
    uri: str, holdings: Iterable[Holding], infos: Mapping[str, DomainInfo]
) -> list[Action]:
    """Detach each holding element, live before config, domain by domain."""
    order = {"live": 0, "config": 1}
    return [
        device_action(
            uri,
            "detach",
            infos[h.uuid],
            h.scope,
            h.found.address,
            h.found.xml,
            describe(h.found.device),
        )
        for h in sorted(holdings, key=lambda h: (h.uuid, order[h.scope]))
    ]


def plan_attach(f: LibvirtFacts, req: AttachRequest) -> list[Action]:
    """Actions that put the VF into the domain; refusals for conflicts unless --force."""
    info = f.domain
    want = wanted_device(req)
    scopes = attach_scopes(req.options, info)
    address = req.vf.address
    held = [h for h in f.holdings if h.found.address == address]
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
    pool = pool_members(f.networks, [req.pf]).get(address)
    if pool is not None and not req.force:
        raise RefusedError(
            f"{label} belongs to libvirt hostdev network {pool!r}: a guest using that "
            "network may be handed the same VF; --force attaches it anyway",
            override="--force",
        )
    infos = {info.uuid: info}
    for h in others:
        infos.setdefault(h.uuid, DomainInfo(h.vm, h.uuid, True, True))
    actions = detach_actions(f.uri, others, infos)
    xml = want.to_xml()
    for scope in scopes:
        mine = [h for h in held if h.uuid == info.uuid and h.scope == scope]
        if mine and all(matches(h.found, want) for h in mine):
            continue  # already here: no change
        if mine and not req.force:
            raise RefusedError(
                f"{label} is already in {info.name} ({scope}) as "
                f"{describe(mine[0].found.device)}, not {describe(want)}; "
                "--force replaces it",
                override="--force",
            )
        actions += detach_actions(f.uri, mine, infos)
        actions.append(device_action(f.uri, "attach", info, scope, address, xml, describe(want)))
    return actions


def plan_detach(f: LibvirtFacts, req: AttachRequest) -> list[Action]:
    """Detach exactly the elements of this domain that hold the VF, in the scopes asked."""
    scopes = detach_scopes(req.options)
    mine = [
        h
        for h in f.holdings
        if h.uuid == f.domain.uuid and h.found.address == req.vf.address and h.scope in scopes
    ]
    return detach_actions(f.uri, mine, {f.domain.uuid: f.domain})
