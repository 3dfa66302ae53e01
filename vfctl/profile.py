"""Profiles: one host's desired SR-IOV state as YAML, checked against ONE schema definition.

The schema below is the single source: the validator walks the YAML node tree with it (so
every error carries ``file:line:column`` and the key path), ``json_schema()`` turns it into
the published ``profiles/schema.json`` and the docs are generated from that. Checks that need
more than one node (duplicate VF ids, two VFs in one slot, id >= total-vfs) run after the
schema, still located; checks that need the host run in :mod:`vfctl.converge`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from vfctl import profile_yaml, vfattrs
from vfctl.errors import UsageError

SCHEMA_ID = "urn:vfctl:profile:1"
Path_ = tuple[str | int, ...]

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
MAX_VF_ID = 65535  # NumVFs/TotalVFs are 16-bit registers (PCIe SR-IOV capability)

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


# ---------------------------------------------------------------- errors and locations


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # key path: pfs[0].vfs[2].id
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ProfileInvalid(UsageError):
    """Every problem found in a profile (exit 2); the message has one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


def fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# ---------------------------------------------------------------- loading


@dataclass
class Profile:
    """A loaded, schema-valid profile: plain data plus where each node was."""

    data: dict[str, Any]
    file: str
    locs: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: Path_, message: str) -> Problem:
        """A located problem; a missing path falls back to its nearest located parent."""
        p = path
        while p not in self.locs and p:
            p = p[:-1]
        line, col = self.locs.get(p, (1, 1))
        return Problem(self.file, line, col, fmt_path(path), message)

    @property
    def host(self) -> str | None:
        h = self.data.get("host")
        return None if h is None else str(h)

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.data.get("defaults") or {})

    @property
    def pfs(self) -> list[dict[str, Any]]:
        return list(self.data.get("pfs") or [])


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.locs: dict[Path_, tuple[int, int]] = {}

    def err(self, node: yaml.Node, path: Path_, msg: str) -> None:
        m = node.start_mark
        self.problems.append(Problem(self.file, m.line + 1, m.column + 1, fmt_path(path), msg))

    def walk(self, t: T, node: yaml.Node, path: Path_) -> Any:
        self.locs[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if t.kind == "object":
            return self._object(t, node, path)
        if t.kind == "array":
            if not isinstance(node, yaml.SequenceNode):
                self.err(node, path, f"expected a list, got {_what(node)}")
                return None
            assert t.items is not None
            return [self.walk(t.items, n, (*path, i)) for i, n in enumerate(node.value)]
        if t.kind == "union":
            return self._union(t, node, path)
        if t.kind == "any-of":
            fits = [o for o in t.options if _kind_ok(o, node)]
            for o in fits:
                trial = _Walker(self.file)
                v = trial.walk(o, node, path)
                if not trial.problems or o is fits[-1]:
                    self.problems += trial.problems
                    self.locs.update(trial.locs)
                    return v
            kinds = " or ".join(_kind_name(o) for o in t.options)
            extra = f" ({t.hint})" if t.hint else ""
            self.err(node, path, f"expected {kinds}, got {_what(node)}{extra}")
            return None
        return self._scalar(t, node, path)

    def _object(self, t: T, node: yaml.Node, path: Path_) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, path, f"expected a mapping, got {_what(node)}")
            return None
        out: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        known = [k for k, _ in t.fields]
        for kn, vn in node.value:
            key = kn.value if isinstance(kn, yaml.ScalarNode) else None
            if not isinstance(key, str) or kn.tag != "tag:yaml.org,2002:str":
                self.err(kn, path, f"invalid key {_what(kn)}: keys are names")
                continue
            if key in seen:
                m = seen[key].start_mark
                self.err(kn, (*path, key), f"duplicate key {key!r} (first at line {m.line + 1})")
                continue
            seen[key] = kn
            ft = t.field(key)
            if ft is None:
                close = _close(key, known)
                self.err(
                    kn,
                    (*path, key),
                    f"unknown key {key!r}"
                    + (
                        f" (did you mean {close!r}?)" if close else f"; allowed: {', '.join(known)}"
                    ),
                )
                continue
            out[key] = self.walk(ft, vn, (*path, key))
        for r in t.required:
            if r not in out and r not in seen:
                self.err(node, path, f"missing required key {r!r}")
        if t.groups:
            given = [g for g in t.groups if any(k in seen for k in g)]
            forms = " or ".join("{" + ", ".join(g) + "}" for g in t.groups)
            if len(given) != 1:
                self.err(node, path, f"give exactly one of {forms}")
            else:
                missing = [k for k in given[0] if k not in seen]
                if missing:
                    self.err(node, path, f"missing key {missing[0]!r} (with {given[0][0]!r})")
        for k, needs in t.depends:
            if k in seen and not all(n in seen for n in needs):
                self.err(seen[k], (*path, k), f"{k!r} needs {' and '.join(map(repr, needs))}")
        return out

    def _union(self, t: T, node: yaml.Node, path: Path_) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, path, f"expected a mapping, got {_what(node)}")
            return None
        values = [o.field(t.tag) for o in t.options]
        names = [str(v.const) for v in values if v is not None]
        tag = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == t.tag), None
        )
        if tag is None:
            self.err(node, path, f"missing required key {t.tag!r} ({' or '.join(names)})")
            return None
        for o in t.options:
            ft = o.field(t.tag)
            if ft is not None and isinstance(tag, yaml.ScalarNode) and tag.value == ft.const:
                return self._object(o, node, path)
        self.err(tag, (*path, t.tag), f"invalid {t.tag} {_show(tag)}: {' or '.join(names)}")
        return None

    def _scalar(self, t: T, node: yaml.Node, path: Path_) -> Any:
        if not _kind_ok(t, node):
            extra = f" ({t.hint})" if t.hint else ""
            self.err(node, path, f"expected {_kind_name(t)}, got {_what(node)}{extra}")
            return None
        assert isinstance(node, yaml.ScalarNode)
        v: Any = node.value
        if t.kind == "integer":
            if not _INT.fullmatch(v):  # an explicit !!int tag on something else
                self.err(node, path, f"invalid integer {_show(node)}")
                return None
            v = profile_yaml.to_int(v)
        elif t.kind == "boolean":
            if not _BOOL.fullmatch(v):
                self.err(node, path, f"invalid boolean {_show(node)}: true or false")
                return None
            v = profile_yaml.to_bool(v)
        if t.const is not None and v != t.const:
            self.err(node, path, f"must be {t.const!r}, got {_show(node)}")
        if t.enum and v not in t.enum:
            self.err(node, path, f"invalid value {_show(node)}: {', '.join(t.enum)}")
        if t.pattern and not re.fullmatch(t.pattern, str(v)):
            self.err(
                node, path, f"invalid value {_show(node)}" + (f" ({t.hint})" if t.hint else "")
            )
        if t.minimum is not None and v < t.minimum:
            self.err(node, path, f"{v} is below the minimum {t.minimum}")
        if t.maximum is not None and v > t.maximum:
            self.err(node, path, f"{v} is above the maximum {t.maximum}")
        return v


_INT = re.compile(r"[-+]?[0-9]{1,20}|0o[0-7]{1,20}|0x[0-9a-fA-F]{1,16}")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_TAGS = {
    "string": "tag:yaml.org,2002:str",
    "integer": "tag:yaml.org,2002:int",
    "boolean": "tag:yaml.org,2002:bool",
}


def _kind_ok(t: T, node: yaml.Node) -> bool:
    if t.kind in _TAGS:
        return isinstance(node, yaml.ScalarNode) and node.tag == _TAGS[t.kind]
    if t.kind in ("object", "union"):
        return isinstance(node, yaml.MappingNode)
    if t.kind == "array":
        return isinstance(node, yaml.SequenceNode)
    return any(_kind_ok(o, node) for o in t.options)


def _kind_name(t: T) -> str:
    if t.enum and t.kind == "string" and len(t.enum) == 1:
        return repr(t.enum[0])
    if t.label:
        return t.label
    return {
        "string": "a string",
        "integer": "an integer",
        "boolean": "true or false",
        "object": "a mapping",
        "union": "a mapping",
        "array": "a list",
    }.get(t.kind, t.kind)


def _what(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    name = {
        "tag:yaml.org,2002:str": "string",
        "tag:yaml.org,2002:int": "integer",
        "tag:yaml.org,2002:bool": "boolean",
        "tag:yaml.org,2002:float": "number",
        "tag:yaml.org,2002:null": "null",
    }.get(node.tag, node.tag)
    return f"{name} {_show(node)}" if name != "null" else "nothing (null)"


def _show(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else _what(node)


def _close(key: str, known: Sequence[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return m[0] if m else None


def loads(text: str, file: str = "<profile>") -> Profile:
    """Parse and check a profile; ProfileInvalid (exit 2) lists every problem found."""
    try:
        node = profile_yaml.compose(text)
    except profile_yaml.YamlRefused as e:
        raise ProfileInvalid([Problem(file, *e.loc, "", e.message)]) from None
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        raise ProfileInvalid(
            [Problem(file, line, col, "", f"YAML syntax: {e.problem or e.context}")]
        ) from None
    except yaml.YAMLError as e:
        raise ProfileInvalid([Problem(file, 1, 1, "", f"YAML: {e}")]) from None
    if node is None:
        raise ProfileInvalid([Problem(file, 1, 1, "", "empty profile: expected a mapping")])
    w = _Walker(file)
    data = w.walk(SCHEMA, node, ())
    prof = Profile(data if isinstance(data, dict) else {}, file, w.locs)
    problems = list(w.problems)
    try:  # the checks across nodes also run on a partly invalid profile, skipping what is missing
        bad = {p.path for p in problems}  # one problem per node: the schema's wins
        for p in semantic_problems(prof):
            if p.path not in bad:
                problems.append(p)
    except (TypeError, KeyError, AttributeError, ValueError):
        pass
    if problems:
        raise ProfileInvalid(sorted(problems, key=lambda p: (p.line, p.column)))
    return prof


def read(path: str) -> str:
    """A profile's text from a file or ``-`` (stdin): bounded, never truncated, never blocking."""
    from vfctl.host.files import FileRefused

    name = "<stdin>" if path == "-" else path
    try:
        return profile_yaml.read_profile(path)
    except profile_yaml.YamlRefused as e:
        raise ProfileInvalid([Problem(name, *e.loc, "", e.message)]) from None
    except FileRefused as e:  # exists but refused: located like every other profile problem
        raise ProfileInvalid([Problem(name, 1, 1, "", e.reason)]) from None


def load(path: str, stdin_text: str | None = None) -> Profile:
    """From a file, or ``-`` for standard input (``stdin_text``, when given, holds it)."""
    if path == "-":
        return loads(stdin_text if stdin_text is not None else read(path), "<stdin>")
    return loads(read(path), path)


# ---------------------------------------------------------------- checks across nodes


def vf_bounds(spec: Any) -> tuple[int, int]:
    """First and last index a VF entry's ``id`` names, without expanding the range."""
    if isinstance(spec, int):
        return spec, spec
    lo, hi = (int(x) for x in str(spec).split("-"))
    return lo, hi


def vf_ids(spec: Any) -> list[int]:
    """The indexes a VF entry's ``id`` names (an int or an inclusive ``a-b`` range).

    Only for ranges already checked against the PF (at most MAX_VF_ID + 1 ids).
    """
    lo, hi = vf_bounds(spec)
    if hi > MAX_VF_ID:
        raise ValueError(f"VF id {hi} above {MAX_VF_ID}")
    return list(range(lo, hi + 1))


def desired_of(entry: Mapping[str, Any]) -> Any:
    """The VF settings in an entry as ``vfsettings.Desired`` (unset: None)."""
    from vfctl.vfsettings import Desired

    return Desired(**{attr: entry.get(key) for key, attr in SETTING_KEYS})


def _settings_problems(
    prof: Profile, at: Path_, entry: Mapping[str, Any], own: Mapping[str, Any] | None = None
) -> Iterator[Problem]:
    """vfsettings' own rules, located at the key when one key alone breaks them."""
    from vfctl import vfsettings

    own = entry if own is None else own
    bad = False
    for key, _attr in SETTING_KEYS:
        if key in own:
            try:
                vfsettings.validate(desired_of({key: own[key]}))
            except UsageError as e:
                bad = True
                yield prof.problem((*at, key), e.message)
    if not bad:
        try:
            vfsettings.validate(desired_of(entry))
        except UsageError as e:
            yield prof.problem(at, e.message)


class _Spans:
    """Disjoint id ranges, sorted: overlap checks in O(log n), never one entry per id."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.where: list[Path_] = []

    def first_overlap(self, lo: int, hi: int) -> tuple[int, Path_] | None:
        """The smallest id of [lo, hi] already taken, and where."""
        import bisect

        k = bisect.bisect_left(self.ends, lo)  # ends are sorted too: the spans are disjoint
        if k < len(self.starts) and self.starts[k] <= hi:
            return max(lo, self.starts[k]), self.where[k]
        return None

    def add(self, lo: int, hi: int, where: Path_) -> None:
        import bisect

        k = bisect.bisect_left(self.starts, lo)
        self.starts.insert(k, lo)
        self.ends.insert(k, hi)
        self.where.insert(k, where)


def semantic_problems(prof: Profile) -> Iterator[Problem]:
    from vfctl import profile_pools

    yield from profile_pools.problems(prof)
    d = prof.defaults
    mac = d.get("mac-address")
    if mac is not None and mac != "auto":
        yield prof.problem(
            ("defaults", "mac-address"),
            "a fixed MAC in defaults would give every VF the same MAC; use auto, or set it per VF",
        )
    yield from _settings_problems(prof, ("defaults",), d)
    slots: dict[tuple[str, str, int], Path_] = {}
    macs: dict[str, Path_] = {}
    for pi, pf in enumerate(prof.pfs):
        total = pf.get("total-vfs")
        spans = _Spans()
        for vi, vf in enumerate(pf.get("vfs") or []):
            at: Path_ = ("pfs", pi, "vfs", vi)
            n_ids = 0
            if vf.get("id") is not None:
                lo, hi = vf_bounds(vf["id"])
                if hi < lo:
                    yield prof.problem((*at, "id"), f"invalid range {vf['id']!r}: end before start")
                elif hi > MAX_VF_ID:
                    yield prof.problem(
                        (*at, "id"), f"VF id {hi} is out of range: VF ids are 0-{MAX_VF_ID}"
                    )
                else:
                    n_ids = hi - lo + 1
                    dup = spans.first_overlap(lo, hi)
                    if dup is not None:
                        line = prof.locs.get(dup[1], (0, 0))[0]
                        yield prof.problem(
                            (*at, "id"), f"duplicate VF id {dup[0]} (also at line {line})"
                        )
                    else:
                        spans.add(lo, hi, (*at, "id"))
                    if total is not None and hi >= total:
                        yield prof.problem(
                            (*at, "id"),
                            f"VF id {hi} is out of range: total-vfs is {total} (ids 0-{total - 1})"
                            if total
                            else f"VF id {hi} is out of range: total-vfs is 0",
                        )
            merged = {**{k: v for k, v in d.items() if k != "drivers-autoprobe"}, **vf}
            yield from _settings_problems(prof, at, merged, own=vf)
            m = vf.get("mac-address")
            if m is not None and m != "auto":
                norm = m.lower().replace("-", ":")
                if n_ids > 1:
                    yield prof.problem(
                        (*at, "mac-address"),
                        f"a fixed MAC on {n_ids} VFs would repeat it; use auto or one entry per VF",
                    )
                elif norm in macs:
                    line = prof.locs.get(macs[norm], (0, 0))[0]
                    yield prof.problem(
                        (*at, "mac-address"), f"MAC {norm} is also given at line {line}"
                    )
                macs.setdefault(norm, (*at, "mac-address"))
            att = vf.get("attach")
            if att is not None:
                if n_ids > 1 and att.get("slot") is not None:
                    yield prof.problem(
                        (*at, "attach", "slot"), f"{n_ids} VFs cannot share one slot"
                    )
                if att.get("slot") is not None:
                    key = (att["backend"], str(att["vm"]).lower().removeprefix("vm"), att["slot"])
                    if key in slots:
                        line = prof.locs.get(slots[key], (0, 0))[0]
                        yield prof.problem(
                            (*at, "attach", "slot"),
                            f"two VFs attached to slot {att['slot']} of VM {att['vm']} "
                            f"(the other at line {line})",
                        )
                    slots.setdefault(key, (*at, "attach", "slot"))
