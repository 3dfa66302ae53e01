"""VF network settings (MAC, VLAN, trust, spoof-check, link state, rates): validate and plan.

Validation and planning are pure; the ``netlink.vf`` op that carries the plan out is in
``vfctl.ops_vf``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from vfctl import vfattrs
from vfctl.errors import HostError, UsageError
from vfctl.model import PF, VF, VFSettings
from vfctl.plan import Action
from vfctl.vfattrs import Desired as Desired  # re-exported: the CLI builds one

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PROTOS = {p.lower(): p for p in vfattrs.ETH_P}  # any case in, the kernel's spelling out


def validate(d: Desired) -> Desired:
    """Normalize and check every value before any write; UsageError (exit 2) names the value."""
    mac = d.mac
    if mac is not None and mac != "auto":
        mac = mac.strip().lower().replace("-", ":")
        if not _MAC.fullmatch(mac):
            raise UsageError(
                f"invalid MAC {d.mac!r}: expected six hex pairs like 02:00:00:00:00:01"
            )
        first = int(mac[:2], 16)
        if first & 1:
            raise UsageError(f"invalid MAC {d.mac}: a multicast address cannot be a VF MAC")
        if mac == "00:00:00:00:00:00":
            raise UsageError("invalid MAC 00:00:00:00:00:00: a VF needs a non-zero MAC")
    if d.vlan is not None and not 0 <= d.vlan <= 4094:
        raise UsageError(f"invalid VLAN {d.vlan}: must be 0-4094 (0 = untagged)")
    if d.qos is not None and not 0 <= d.qos <= 7:
        raise UsageError(f"invalid qos {d.qos}: must be 0-7")
    proto = d.vlan_proto
    if proto is not None:
        p = PROTOS.get(proto.lower())
        if p is None:
            raise UsageError(f"invalid VLAN protocol {proto!r}: 802.1q or 802.1ad")
        proto = p
        if p == "802.1ad" and not (d.vlan or d.qos):
            raise UsageError("VLAN protocol 802.1ad needs a non-zero --vlan or --qos")
    if d.link_state is not None and d.link_state not in vfattrs.LINK_STATES:
        raise UsageError(f"invalid link state {d.link_state!r}: auto, enable or disable")
    for name in ("min_tx_rate", "max_tx_rate"):
        v = getattr(d, name)
        if v is not None and v < 0:
            raise UsageError(f"invalid {name.replace('_', '-')} {v}: must be 0 or more (Mbps)")
    if d.min_tx_rate and d.max_tx_rate and d.min_tx_rate > d.max_tx_rate:
        raise UsageError(
            f"invalid rates: min-tx-rate {d.min_tx_rate} > max-tx-rate {d.max_tx_rate}"
        )
    return dataclasses.replace(d, mac=mac, vlan_proto=proto)


def auto_mac(host_identity: str, pf_address: str, vf_index: int) -> str:
    """A stable, locally administered unicast MAC for (host, PF, VF): same after every reboot."""
    h = hashlib.sha256(f"vfctl:{host_identity}:{pf_address}:{vf_index}".encode()).digest()
    b = bytearray(h[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def _groups(
    d: Desired, cur: VFSettings, mac: str | None
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group, new values, old values) for each netlink write that is needed.

    A group of several settings (vlan+qos+proto, min+max rate) is written whole: what ``d``
    leaves out keeps its current value, unreported values count as the kernel default.
    A one-setting group is written unless the driver reports the wanted value already.
    The old values are what undo writes back.
    """
    want = {n: getattr(d, n) for n in vfattrs.NAMES}
    want["mac"] = mac
    out: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for g in vfattrs.PLAN_ORDER:
        members = vfattrs.MEMBERS[g]
        if all(want[n] is None for n in members):
            continue
        old = {n: _or_default(n, getattr(cur, n)) for n in members}
        if len(members) == 1:
            (n,) = members
            have = getattr(cur, n)
            if have is not None and vfattrs.same(n, have, want[n]):
                continue
            out.append((g, {n: want[n]}, old))
            continue
        new = {n: old[n] if want[n] is None else want[n] for n in members}
        if g == "vlan" and not new["vlan"] and not new["qos"]:
            new["vlan_proto"] = vfattrs.DEFAULTS["vlan_proto"]  # no tag, no protocol
        if new != old:
            out.append((g, new, old))
    return out


def _or_default(name: str, have: Any) -> Any:
    """A reported value, else the kernel default (what an unreported setting is taken for)."""
    return vfattrs.DEFAULTS[name] if have is None or have == "" else have


def _fmt(v: Mapping[str, Any]) -> str:
    return ",".join(
        f"{k}={'on' if x is True else 'off' if x is False else x}" for k, x in v.items()
    )


def _change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``old -> new``; ``ensure new`` when the old value is only the driver's usual default
    (a VF not created yet, or a driver that does not report it): not a change to show."""
    return f"ensure {_fmt(new)}" if _fmt(old) == _fmt(new) else f"{_fmt(old)} -> {_fmt(new)}"


def plan_set(pf: PF, vf: VF, d: Desired, *, ident: str | None = None) -> list[Action]:
    """Actions that bring one VF's settings to ``d`` (validated); empty when they already hold.

    Pure: compares with ``vf.settings`` as discovered. ``ident`` (``HostModel.host_id``) is
    needed only for ``mac: auto``.
    """
    if not pf.netdev:
        raise HostError(f"{pf.address} has no netdev: VF settings go through the PF's interface")
    if d.mac == "auto" and ident is None:
        raise ValueError("mac 'auto' needs the host identity (host_id)")
    mac = auto_mac(ident or "", pf.address, vf.index) if d.mac == "auto" else d.mac
    actions = []
    for name, new, old in _groups(d, vf.settings, mac):
        base = {"pf": pf.netdev, "pf_address": pf.address, "driver": pf.driver, "vf": vf.index}
        target = f"{pf.netdev} vf {vf.index} {name}"
        actions.append(
            Action(
                "netlink.vf",
                target,
                _change(old, new),
                {**base, "settings": new},
                Action(
                    "netlink.vf",
                    target,
                    _change(new, old),
                    {**base, "settings": old, "undo": True},
                ),
            )
        )
    return actions
