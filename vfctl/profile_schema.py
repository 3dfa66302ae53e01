"""The profile schema, defined once as data: the validator walks it, ``json_schema()`` publishes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vfctl import vfattrs
from vfctl.profile_doc import MAX_VF_ID as MAX_VF_ID

SCHEMA_ID = "urn:vfctl:profile:1"

# ---------------------------------------------------------------- the schema, as data


@dataclass(frozen=True)
class T:
    """One schema node. ``kind``: object, array, string, integer, boolean, any-of, union."""

    kind: str
    doc: str = ""
    fields: tuple[tuple[str, T], ...] = ()
    required: tuple[str, ...] = ()
    items: T | None = None
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    const: int | str | None = None
    options: tuple[T, ...] = ()  # any-of: alternatives tried in order
    groups: tuple[tuple[str, ...], ...] = ()  # object: exactly one group of keys must be given
    depends: tuple[tuple[str, tuple[str, ...]], ...] = ()  # key -> keys it needs
    tag: str = ""  # union: discriminator key; options are objects with ``const`` on it
    hint: str = ""  # added to type errors (e.g. "quote it")
    label: str = ""  # any-of alternative's name in errors ("a MAC address")

    def field(self, name: str) -> T | None:
        return next((t for k, t in self.fields if k == name), None)


def _s(doc: str, **kw: Any) -> T:
    return T("string", doc, **kw)


def _i(doc: str, lo: int | None = None, hi: int | None = None) -> T:
    return T("integer", doc, minimum=lo, maximum=hi)


def _b(doc: str) -> T:
    return T("boolean", doc)


def _e(doc: str, *values: str) -> T:
    return T("string", doc, enum=values)


MAC_RE = r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"
HEX4 = r"^[0-9a-fA-F]{4}$"
PCI_RE = r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"
RANGE_RE = r"^[0-9]{1,10}-[0-9]{1,10}$"

# VF keys shared by ``defaults`` and each ``vfs`` entry (nmstate's names where it has them)
SETTING_KEYS: tuple[tuple[str, str], ...] = vfattrs.YAML_KEYS  # (YAML key, setting)


def _setting(a: vfattrs.Attr) -> T:
    """A VF setting's schema node, from its row in the table."""
    if a.kind == "mac":
        return T(
            "any-of",
            a.doc,
            options=(
                T("string", enum=("auto",)),
                T("string", label="a MAC address", pattern=MAC_RE),
            ),
            hint="quote MACs",
        )
    if a.kind == "int":
        return _i(a.doc, a.lo, a.hi)
    if a.kind == "bool":
        return _b(a.doc)
    return _e(a.doc, *a.choices)


_VF_SETTINGS: tuple[tuple[str, T], ...] = (
    *((a.yaml_key, _setting(a)) for a in vfattrs.ATTRS),
    (
        "driver",
        _s(
            "Driver to bind the VF to through driver_override (`vfio-pci` for passthrough), or "
            "`default` to clear the override and let the kernel pick the VF's own driver.",
            pattern=r"^[A-Za-z0-9_-]{1,55}$",
            label="a kernel module name",
        ),
    ),
)

_ATTACH_COMMON: tuple[tuple[str, T], ...] = (
    (
        "vm",
        T(
            "any-of",
            "The VM: a libvirt domain name or UUID; a Proxmox VM id (`101`, `vm101`) or name.",
            options=(
                T("string", label="a VM name", pattern=r"^\S+$"),
                T("integer", label="a VM id", minimum=1),
            ),
        ),
    ),
)

ATTACH = T(
    "union",
    "Put this VF into a VM. Attachments are persistent VM configuration (they survive "
    "reboots by themselves); a VF already in the VM is left as it is.",
    tag="backend",
    options=(
        T(
            "object",
            "libvirt: a <hostdev> (or <interface type='hostdev'>) in the domain's persistent "
            "config, and live too when the domain runs.",
            fields=(
                ("backend", T("string", "VM manager.", const="libvirt")),
                *_ATTACH_COMMON,
                (
                    "mode",
                    _e(
                        "`hostdev`: plain PCI passthrough; `interface`: libvirt also "
                        "programs the VF's MAC/VLAN from this entry.",
                        "hostdev",
                        "interface",
                    ),
                ),
                (
                    "managed",
                    _b(
                        "libvirt managed='yes' (libvirt binds vfio-pci itself). Default: "
                        "no when the VF is bound to vfio-pci by this profile."
                    ),
                ),
            ),
            required=("backend", "vm"),
        ),
        T(
            "object",
            "Proxmox VE: a hostpciN entry in the VM config (through the PVE API).",
            fields=(
                ("backend", T("string", "VM manager.", const="proxmox")),
                *_ATTACH_COMMON,
                ("pcie", _b("pcie=1 (needs a q35 machine). Default: on for q35 VMs.")),
                ("rombar", _b("Expose the device ROM BAR.")),
                (
                    "mapping",
                    _s(
                        "Cluster resource mapping id to use instead of a raw address.",
                        pattern=r"^[A-Za-z][A-Za-z0-9_-]+$",
                    ),
                ),
                ("driver-keep", _b("driver=keep: PVE leaves the host driver alone (PVE 9.1+).")),
                ("slot", _i("hostpciN slot number; default: the first free one.", 0, 15)),
            ),
            required=("backend", "vm"),
        ),
    ),
)

VF_ENTRY = T(
    "object",
    "Desired state of one VF or a range of VFs. Keys left out are left as they are.",
    fields=(
        (
            "id",
            T(
                "any-of",
                'VF index (0-based), or an inclusive range like `"0-3"`.',
                options=(
                    _i("", 0, MAX_VF_ID),
                    T("string", label='a range like "0-3"', pattern=RANGE_RE),
                ),
            ),
        ),
        *_VF_SETTINGS,
        ("attach", ATTACH),
    ),
    required=("id",),
)

MATCH = T(
    "object",
    "Which PF: by interface name, by PCI address, or the n-th PF with these PCI ids "
    "(ordered by PCI address). Exactly one of the three forms.",
    fields=(
        ("netdev", _s("PF interface name.", pattern=r"^[^/\s]+$")),
        ("pci", _s("PF PCI address, `0000:03:00.0` or `03:00.0`.", pattern=PCI_RE)),
        ("vendor", _s("PCI vendor id, 4 hex digits (quote it).", pattern=HEX4, hint="quote it")),
        ("device", _s("PCI device id, 4 hex digits (quote it).", pattern=HEX4, hint="quote it")),
        ("index", _i("Which of the PFs with these ids, 0-based; default 0.", 0)),
    ),
    groups=(("netdev",), ("pci",), ("vendor", "device")),
    depends=(("index", ("vendor", "device")),),
)

PF_ENTRY = T(
    "object",
    "Desired state of one physical function.",
    fields=(
        ("match", MATCH),
        (
            "total-vfs",
            _i(
                "Number of VFs (sriov_numvfs). Changing it recreates every VF of the PF. "
                "Left out: keep the current count.",
                0,
            ),
        ),
        ("drivers-autoprobe", _b("sriov_drivers_autoprobe: whether new VFs get a host driver.")),
        ("vfs", T("array", "Per-VF settings.", items=VF_ENTRY)),
    ),
    required=("match",),
)

DEFAULTS = T(
    "object",
    "Applied to every PF of this profile (drivers-autoprobe) and to every VF of those PFs "
    "(the rest); a PF's or VF's own key wins. `mac-address` may only be `auto` here.",
    fields=(("drivers-autoprobe", _b("Default for each PF's drivers-autoprobe.")), *_VF_SETTINGS),
)

_IDS = T(
    "any-of",
    'VF index (0-based), or an inclusive range like `"0-3"`.',
    options=(_i("", 0, MAX_VF_ID), T("string", label='a range like "0-3"', pattern=RANGE_RE)),
)
POOL_NAME = _s(
    "Pool name: the libvirt network name / the PVE mapping id.",
    pattern=r"^[A-Za-z][A-Za-z0-9_-]{1,62}$",
)
_POOL_KEYS = ("vlan-id", "qos", "spoof-check", "trust", "max-tx-rate")
POOL_ENTRY = T(
    "object",
    "A VF pool (docs/pools.md): its VFs on this host get these settings and vfio-pci, and the VM "
    "manager hands them out (libvirt: a hostdev network; Proxmox: this node's mapping entries).",
    fields=(
        ("name", POOL_NAME),
        ("backend", _e("VM manager that holds the pool.", "libvirt", "proxmox")),
        ("match", MATCH),
        ("vfs", T("any-of", "This host's members.", options=(
            _IDS.options[0], _IDS.options[1], T("array", label="a list of ids", items=_IDS)))),
        ("mac-address", _e("`auto`: each member its own stable MAC.", "auto")),
        *((k, t) for k, t in _VF_SETTINGS if k in _POOL_KEYS),
    ),
    required=("name", "backend", "match", "vfs"),
)  # fmt: skip
POOL_ATTACH = T(
    "object",
    "A VM that draws one VF from a pool at start (libvirt `<interface type='network'>`, "
    "Proxmox `hostpciN: mapping=`); one per VM and pool.",
    fields=(
        *_ATTACH_COMMON,
        ("pool", POOL_NAME),
        ("pcie", _b("Proxmox: pcie=1 (needs q35). Default: on for q35 VMs.")),
        ("mac-address", _s("libvirt: the interface's MAC.", pattern=MAC_RE, hint="quote MACs")),
    ),
    required=("vm", "pool"),
)

SCHEMA = T(
    "object",
    "A vfctl profile: one host's desired SR-IOV state.",
    fields=(
        ("version", T("integer", "Profile format version.", const=1)),
        ("host", _s("Refuse to apply on a host with another hostname.", pattern=r"^\S+$")),
        ("defaults", DEFAULTS),
        ("pfs", T("array", "The physical functions this profile manages.", items=PF_ENTRY)),
        ("pools", T("array", "VF pools (docs/pools.md).", items=POOL_ENTRY)),
        ("attach", T("array", "VMs attached to pools by name.", items=POOL_ATTACH)),
    ),
    required=("version", "pfs"),
)


# ---------------------------------------------------------------- JSON Schema


def _js(t: T) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.doc:
        out["description"] = t.doc
    if t.kind == "object":
        out["type"] = "object"
        out["properties"] = {k: _js(v) for k, v in t.fields}
        out["additionalProperties"] = False
        if t.required:
            out["required"] = list(t.required)
        if t.groups:
            out["oneOf"] = [{"required": list(g)} for g in t.groups]
        if t.depends:
            out["dependentRequired"] = {k: list(v) for k, v in t.depends}
    elif t.kind == "array":
        out["type"] = "array"
        assert t.items is not None
        out["items"] = _js(t.items)
    elif t.kind in ("string", "integer", "boolean"):
        out["type"] = t.kind
        if t.const is not None:
            out["const"] = t.const
        if t.enum:
            out["enum"] = list(t.enum)
        if t.pattern:
            out["pattern"] = t.pattern
        if t.minimum is not None:
            out["minimum"] = t.minimum
        if t.maximum is not None:
            out["maximum"] = t.maximum
    elif t.kind in ("any-of", "union"):
        out["oneOf"] = [_js(o) for o in t.options]
    return out


def json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12), generated from ``SCHEMA``."""
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID}
    doc["title"] = "vfctl profile"
    doc.update(_js(SCHEMA))
    return doc
