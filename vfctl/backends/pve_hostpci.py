"""Proxmox PCI property strings: ``hostpciN`` values and PCI-mapping ``map`` entries.

Conversion only (string <-> object), no policy: which slot to use, whether to use a mapping
and what counts as "the VF is already there" live in ``proxmox.py``. Parsing follows
pve-common's property-string rules (split on ``,``, blank parts skipped, duplicate keys and
unknown keys rejected, a bare part goes to the default key ``host``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_HOSTPCI = 16  # qemu-server $MAX_HOSTPCI_DEVICES
SLOTS = tuple(f"hostpci{i}" for i in range(MAX_HOSTPCI))

# one HOSTPCIID: optional domain, bus:dev, optional .function (no function: all functions)
_HOSTPCIID = re.compile(r"^(?:([a-f0-9]{4,}):)?([a-f0-9]{2}):([a-f0-9]{2})(?:\.([a-f0-9]))?$")
_CONFIGID = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false"}

HOSTPCI_KEYS = (
    "host", "device-id", "driver", "legacy-igd", "mapping", "mdev", "pcie", "rombar",
    "romfile", "sub-device-id", "sub-vendor-id", "vendor-id", "x-vga",
)  # fmt: skip
_BOOL_KEYS = {"legacy-igd", "pcie", "rombar", "x-vga"}
MAP_KEYS = ("node", "path", "id", "iommugroup", "subsystem-id", "description")


class PropertyStringError(ValueError):
    """A property string that PVE itself would reject."""


def split_property_string(
    text: str, keys: Iterable[str], default_key: str | None
) -> dict[str, str]:
    """Key/value pairs in order; raises on unknown or repeated keys like pve-common does."""
    known = set(keys)
    out: dict[str, str] = {}
    for part in text.split(","):
        if part.strip() == "":
            continue
        if "=" in part:
            k, v = part.split("=", 1)
        elif default_key is not None:
            k, v = default_key, part
        else:
            raise PropertyStringError(f"value without key: {part!r}")
        if k not in known:
            raise PropertyStringError(f"unknown key {k!r}")
        if k in out:
            raise PropertyStringError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_bool(v: str) -> bool:
    lv = v.lower()
    if lv in _TRUE:
        return True
    if lv in _FALSE:
        return False
    raise PropertyStringError(f"not a boolean: {v!r}")


def _b(v: bool) -> str:
    return "1" if v else "0"


@dataclass(frozen=True)
class HostPci:
    """One ``hostpciN`` value. ``host`` keeps the IDs as written (maybe short or function-less)."""

    host: tuple[str, ...] = ()
    mapping: str | None = None
    pcie: bool | None = None
    rombar: bool | None = None
    x_vga: bool | None = None
    driver: str | None = None  # "vfio" | "keep"
    extra: tuple[tuple[str, str], ...] = ()  # every other key, verbatim, in order


def check_mapping_id(mid: str) -> str:
    """A cluster mapping id as PVE's pve-configid format takes it (the whole string)."""
    from vfctl.errors import UsageError

    if not _CONFIGID.fullmatch(mid):
        raise UsageError(
            f"invalid --mapping {mid[:60]!r}: a letter, then letters, digits, '-' or '_'"
        )
    return mid


def parse_hostpci(text: str) -> HostPci:
    kv = split_property_string(text, HOSTPCI_KEYS, "host")
    host: tuple[str, ...] = ()
    if "host" in kv:
        host = tuple(kv.pop("host").split(";"))
        for hid in host:
            if not _HOSTPCIID.fullmatch(hid):
                raise PropertyStringError(f"invalid host PCI id {hid!r}")
    mapping = kv.pop("mapping", None)
    if mapping is not None and not _CONFIGID.fullmatch(mapping):
        raise PropertyStringError(f"invalid mapping id {mapping!r}")
    bools = {k: parse_bool(kv.pop(k)) if k in kv else None for k in ("pcie", "rombar", "x-vga")}
    driver = kv.pop("driver", None)
    if driver is not None and driver not in ("vfio", "keep"):
        raise PropertyStringError(f"invalid driver {driver!r}: vfio or keep")
    if "legacy-igd" in kv:
        kv["legacy-igd"] = _b(parse_bool(kv["legacy-igd"]))
    return HostPci(
        host=host,
        mapping=mapping,
        pcie=bools["pcie"],
        rombar=bools["rombar"],
        x_vga=bools["x-vga"],
        driver=driver,
        extra=tuple(kv.items()),
    )


def format_hostpci(h: HostPci) -> str:
    """Canonical form: ``host=``/``mapping=`` first, booleans as 1/0."""
    parts: list[str] = []
    if h.host:
        parts.append("host=" + ";".join(h.host))
    if h.mapping is not None:
        parts.append(f"mapping={h.mapping}")
    for key, val in (("pcie", h.pcie), ("rombar", h.rombar), ("x-vga", h.x_vga)):
        if val is not None:
            parts.append(f"{key}={_b(val)}")
    if h.driver is not None:
        parts.append(f"driver={h.driver}")
    parts.extend(f"{k}={v}" for k, v in h.extra)
    return ",".join(parts)


def normalize_hostpci_id(hid: str) -> str:
    """``03:10.2`` -> ``0000:03:10.2``; a function-less ID keeps having no function."""
    m = _HOSTPCIID.fullmatch(hid.lower())
    if not m:
        raise PropertyStringError(f"invalid host PCI id {hid!r}")
    dom, bus, dev, fn = m.groups()
    base = f"{dom or '0000'}:{bus}:{dev}"
    return base if fn is None else f"{base}.{fn}"


def expand_hostpci_id(hid: str) -> tuple[str, ...]:
    """Full addresses an ID stands for: a function-less ID means all 8 functions of the device."""
    n = normalize_hostpci_id(hid)
    if "." in n:
        return (n,)
    return tuple(f"{n}.{f}" for f in range(8))


@dataclass(frozen=True)
class MapEntry:
    """One node's entry in a cluster PCI mapping (``map`` item of /cluster/mapping/pci)."""

    node: str
    path: tuple[str, ...]
    id: str  # vvvv:dddd
    iommugroup: int | None = None
    subsystem_id: str | None = None  # vvvv:dddd
    description: str | None = None


def parse_map_entry(text: str) -> MapEntry:
    kv = split_property_string(text, MAP_KEYS, None)
    for req in ("node", "path", "id"):
        if req not in kv:
            raise PropertyStringError(f"missing key {req!r}")
    group = kv.get("iommugroup")
    try:
        iommugroup = int(group) if group is not None else None
    except ValueError as exc:
        raise PropertyStringError(f"invalid iommugroup {group!r}") from exc
    return MapEntry(
        node=kv["node"],
        path=tuple(kv["path"].split(";")),
        id=kv["id"],
        iommugroup=iommugroup,
        subsystem_id=kv.get("subsystem-id"),
        description=kv.get("description"),
    )


def format_map_entry(e: MapEntry) -> str:
    parts = [f"node={e.node}", "path=" + ";".join(e.path), f"id={e.id}"]
    if e.iommugroup is not None:
        parts.append(f"iommugroup={e.iommugroup}")
    if e.subsystem_id is not None:
        parts.append(f"subsystem-id={e.subsystem_id}")
    if e.description is not None:
        parts.append(f"description={e.description}")
    return ",".join(parts)


def mapping_paths(mappings: Sequence[Mapping[str, Any]], node: str) -> dict[str, tuple[str, ...]]:
    """Mapping id -> full addresses its entry for ``node`` stands for (unparsable entries skipped)."""
    out: dict[str, tuple[str, ...]] = {}
    for m in mappings:
        items = m.get("map") or []
        if isinstance(items, str):
            items = [items]
        for raw in items:
            try:
                e = parse_map_entry(str(raw))
                if e.node == node:
                    out[str(m["id"])] = tuple(a for p in e.path for a in expand_hostpci_id(p))
            except PropertyStringError:
                continue
    return out


def slot_addresses(value: str, mapping_addrs: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Full addresses one ``hostpciN`` value puts into the VM (raw or through a mapping)."""
    h = parse_hostpci(value)
    if h.host:
        return tuple(a for hid in h.host for a in expand_hostpci_id(hid))
    if h.mapping is not None:
        return mapping_addrs.get(h.mapping, ())
    return ()


def held_addresses(
    config: Mapping[str, Any], mappings: Sequence[Mapping[str, Any]], node: str
) -> dict[str, str]:
    """Every PCI address a VM config holds -> the slot key holding it.

    Raw ``host=`` IDs count with ``;`` lists expanded and function-less IDs meaning all
    functions; ``mapping=`` IDs count through the mapping's entry for ``node``. Values that
    do not parse are skipped: inventory must not fail on a config PVE itself accepted.
    """
    maddrs = mapping_paths(mappings, node)
    out: dict[str, str] = {}
    for slot in SLOTS:
        value = config.get(slot)
        if not isinstance(value, str):
            continue
        try:
            addrs = slot_addresses(value, maddrs)
        except PropertyStringError:
            continue
        for a in addrs:
            out.setdefault(a, slot)
    return out
