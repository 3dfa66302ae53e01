"""Cluster PCI resource mappings as PVE resolves them, and the pools they form.

A mapping (``/cluster/mapping/pci``) has any number of entries per node. Several entries for
one node are a *pool*: at VM start qemu-server tries them in order and takes the first one
none of whose functions is used by an earlier slot of the same VM and that it can reserve
(qemu-server ``src/PVE/QemuServer/PCI.pm``: ``parse_hostpci`` builds one alternative per
entry, ``choose_hostpci_devices`` picks one, ``reserve_pci_usage`` guards it; pve-docs
``qm.adoc`` "Resource Mapping": "the first free one will be used when the guest is
started"). ``;`` inside one entry's path is one alternative made of several functions.

Pure: the backend passes in the API's answers and this node's PCI addresses (sysfs).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfctl.backends.pve_hostpci import (
    MapEntry,
    PropertyStringError,
    config_slots,
    expand_hostpci_id,
    parse_hostpci,
    parse_map_entry,
)

MANAGED_PREFIX = "vfctl:"  # description marker of mappings vfctl created (and may edit)

Warn = Callable[[str], None]


@dataclass(frozen=True)
class PciMapping:
    """One cluster PCI mapping with every entry PVE would accept, in order."""

    id: str
    description: str | None
    mdev: bool
    entries: tuple[MapEntry, ...]
    raw: tuple[str, ...]  # the ``map`` items as stored (what a write must preserve)

    @property
    def managed(self) -> bool:
        """vfctl created it (and so may change or delete it); any other mapping is read-only."""
        return (self.description or "").startswith(MANAGED_PREFIX)

    def on(self, node: str) -> tuple[MapEntry, ...]:
        return tuple(e for e in self.entries if e.node == node)

    def is_pool(self, node: str) -> bool:
        return len(self.on(node)) > 1

    def alternatives(self, node: str, present: Collection[str]) -> tuple[tuple[str, ...], ...]:
        """Per entry of ``node``, the full addresses it stands for, in PVE's try order."""
        return tuple(
            tuple(a for p in e.path for a in expand_hostpci_id(p, present)) for e in self.on(node)
        )


def parse_mappings(
    items: Sequence[Mapping[str, Any]], warn: Warn | None = None
) -> list[PciMapping]:
    """The API's mapping list; entries PVE would reject are skipped with a warning."""
    out: list[PciMapping] = []
    for m in items:
        mid = str(m.get("id"))
        raw_map = m.get("map") or []
        if isinstance(raw_map, str):
            raw_map = [raw_map]
        raw = tuple(str(x) for x in raw_map)
        entries: list[MapEntry] = []
        for i, text in enumerate(raw):
            try:
                entries.append(parse_map_entry(text))
            except PropertyStringError as exc:
                if warn is not None:
                    warn(f"PCI mapping {mid} entry {i}: {exc}; entry skipped")
        desc = m.get("description")
        out.append(
            PciMapping(
                id=mid,
                description=str(desc) if desc is not None else None,
                mdev=str(m.get("mdev", "0")) in ("1", "True", "true"),
                entries=tuple(entries),
                raw=raw,
            )
        )
    return out


@dataclass(frozen=True)
class SlotUse:
    """What one ``hostpciN`` asks PVE for on one node."""

    slot: str
    value: str
    mapping: str | None
    alternatives: tuple[tuple[str, ...], ...]  # one tuple of functions per alternative
    mdev: bool  # a mediated device on the function: the VM holds no function itself

    @property
    def exact(self) -> tuple[str, ...]:
        """The functions the VM surely gets at start (one alternative, no mdev), else ()."""
        return self.alternatives[0] if len(self.alternatives) == 1 and not self.mdev else ()

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(a for alt in self.alternatives for a in alt)


def slot_uses(
    config: Mapping[str, Any],
    mappings: Sequence[PciMapping],
    node: str,
    present: Collection[str],
    warn: Warn | None = None,
    vm: str = "VM",
) -> list[SlotUse]:
    """Every hostpciN of a VM config resolved for ``node``; invalid ones skipped with a warning."""
    by_id = {m.id: m for m in mappings}
    out: list[SlotUse] = []
    for slot, value in config_slots(config):
        try:
            h = parse_hostpci(value)
            if h.host:
                alts: tuple[tuple[str, ...], ...] = (
                    tuple(a for hid in h.host for a in expand_hostpci_id(hid, present)),
                )
            else:
                m = by_id.get(str(h.mapping))
                alts = m.alternatives(node, present) if m is not None else ()
        except PropertyStringError as exc:
            if warn is not None:
                warn(f"{vm} {slot}: {exc} ({value!r}); PVE rejects it, skipped")
            continue
        out.append(SlotUse(slot, value, h.mapping, alts, h.mdev is not None))
    return out


def held_addresses(uses: Sequence[SlotUse]) -> dict[str, str]:
    """PCI address -> slot for the functions a VM config surely holds (not pool candidates)."""
    out: dict[str, str] = {}
    for u in uses:
        for a in u.exact:
            out.setdefault(a, u.slot)
    return out


def referenced_mappings(uses: Sequence[SlotUse]) -> dict[str, str]:
    """Mapping id -> first slot using it."""
    out: dict[str, str] = {}
    for u in uses:
        if u.mapping is not None:
            out.setdefault(u.mapping, u.slot)
    return out


@dataclass(frozen=True)
class Pool:
    """A multi-entry mapping on one node: members in try order, and who may draw from it."""

    mapping: PciMapping
    node: str
    members: tuple[tuple[str, ...], ...]
    vms: tuple[str, ...]  # "vm101", every VM whose config (or pending config) references it

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for alt in self.members for a in alt)
