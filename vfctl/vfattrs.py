"""The ten VF settings, one row each: every other description of them derives from this table.

Modelled on systemd-networkd's ``netif-sriov.c`` (``SRIOVAttribute`` and one encoder per
netlink attribute): a *setting* (``ATTRS``) is what a user names — its YAML key, CLI option,
kernel default, how it compares; a *group* (``GROUPS``) is one IFLA_VF_* attribute the kernel
takes as one struct, so settings of one group are always written together (vlan + qos +
vlan_proto in IFLA_VF_VLAN / IFLA_VF_VLAN_LIST, min + max rate in IFLA_VF_RATE).

Rules the planner, the read-back and verify share (``vfsettings``, ``converge``, ``drift``):
- a setting the driver does not report (None) counts as its kernel default when a group of
  several settings is planned, and as unknown otherwise (a one-setting write is then planned
  as "ensure"); verify and drift never call an unreported setting different;
- undo writes the whole group back as it was (unreported: the default);
- MAC and VLAN protocol compare case-insensitively; a VLAN protocol means nothing without a
  VLAN id or priority (802.1Q is written when both are 0, and not kept for re-created VFs).
"""

from __future__ import annotations

from vfctl.model import VFSettings
from vfctl.record import dataclass

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

UNSET = 0xFFFFFFFF  # a u32 the driver left unfilled (rtnl_fill_vfinfo() presets -1)
LINK_STATES = ("auto", "enable", "disable")  # IFLA_VF_LINK_STATE_AUTO/ENABLE/DISABLE: 0/1/2
ETH_P = {"802.1Q": 0x8100, "802.1ad": 0x88A8}  # include/uapi/linux/if_ether.h


def _int_out(v: Any) -> int:
    return int(v or 0)


def _bool_out(v: Any) -> int:
    return int(bool(v))


def _link_out(v: Any) -> int:
    return LINK_STATES.index(v)


def _int_in(v: int | None) -> int | None:
    return v


def _flag_in(v: int | None) -> bool | None:
    return None if v is None or v == UNSET else bool(v)


def _link_in(v: int | None) -> str | None:
    return LINK_STATES[v] if v is not None and 0 <= v < len(LINK_STATES) else None


@dataclass(frozen=True)
class Attr:
    """One VF setting: the field of ``VFSettings``/``Desired`` named ``name``."""

    name: str
    label: str  # in messages ("VLAN qos")
    yaml_key: str  # profile key
    option: str  # ``vfctl set`` option
    help: str  # its help text
    doc: str  # the profile schema's description
    default: Any  # what the kernel gives a new VF
    group: str  # the netlink write it belongs to (``GROUPS``)
    field: str | None  # its u32 in the group's struct (pyroute2's name); None: not a u32
    kind: str  # profile schema type: mac, int, bool, enum
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()  # enum values as the profile spells them
    casefold: bool = False  # compare ignoring case
    to_u32: Callable[[Any], int] = _int_out
    from_u32: Callable[[int | None], Any] = _int_in


_ON_OFF = "on or off."
ATTRS: tuple[Attr, ...] = (
    Attr(
        name="mac",
        label="MAC",
        yaml_key="mac-address",
        option="--mac",
        help="MAC, or 'auto' (stable, derived).",
        doc=(
            "MAC address of the VF, or `auto`: a stable locally administered MAC derived "
            "from the machine-id, the PF address and the VF id (the same after every "
            "reboot)."
        ),
        default="00:00:00:00:00:00",
        group="mac",
        field=None,
        kind="mac",
        casefold=True,
    ),
    Attr(
        name="vlan",
        label="VLAN",
        yaml_key="vlan-id",
        option="--vlan",
        help="VLAN id 0-4094 (0: none).",
        doc="802.1Q VLAN the PF tags the VF's traffic with; 0 = untagged.",
        default=0,
        group="vlan",
        field="vlan",
        kind="int",
        lo=0,
        hi=4094,
    ),
    Attr(
        name="qos",
        label="VLAN qos",
        yaml_key="qos",
        option="--qos",
        help="802.1p priority 0-7.",
        doc="802.1p priority for the VLAN tag.",
        default=0,
        group="vlan",
        field="qos",
        kind="int",
        lo=0,
        hi=7,
    ),
    Attr(
        name="vlan_proto",
        label="VLAN protocol",
        yaml_key="vlan-proto",
        option="--vlan-proto",
        help="802.1q or 802.1ad.",
        doc="VLAN protocol of the tag.",
        default="802.1Q",
        group="vlan",
        field=None,
        kind="enum",
        choices=("802.1q", "802.1ad"),
        casefold=True,
    ),
    Attr(
        name="spoofchk",
        label="spoof-check",
        yaml_key="spoof-check",
        option="--spoofchk",
        help=_ON_OFF,
        doc="Drop frames whose source MAC is not the VF's MAC.",
        default=True,
        group="spoofchk",
        field="spoofchk",
        kind="bool",
        to_u32=_bool_out,
        from_u32=_flag_in,
    ),
    Attr(
        name="trust",
        label="trust",
        yaml_key="trust",
        option="--trust",
        help=_ON_OFF,
        doc="Trusted VF: may change its MAC and use promiscuous/all-multicast modes.",
        default=False,
        group="trust",
        field="trust",
        kind="bool",
        to_u32=_bool_out,
        from_u32=_flag_in,
    ),
    Attr(
        name="link_state",
        label="link-state",
        yaml_key="link-state",
        option="--link-state",
        help="auto|enable|disable.",
        doc="VF link: follow the PF, always up, or down.",
        default="auto",
        group="link_state",
        field="link_state",
        kind="enum",
        choices=LINK_STATES,
        to_u32=_link_out,
        from_u32=_link_in,
    ),
    Attr(
        name="min_tx_rate",
        label="min-tx-rate",
        yaml_key="min-tx-rate",
        option="--min-tx-rate",
        help="Mbps.",
        doc="Minimum transmit rate in Mbit/s; 0 = none.",
        default=0,
        group="rate",
        field="min_tx_rate",
        kind="int",
        lo=0,
    ),
    Attr(
        name="max_tx_rate",
        label="max-tx-rate",
        yaml_key="max-tx-rate",
        option="--max-tx-rate",
        help="Mbps.",
        doc="Maximum transmit rate in Mbit/s; 0 = unlimited.",
        default=0,
        group="rate",
        field="max_tx_rate",
        kind="int",
        lo=0,
    ),
    Attr(
        name="query_rss",
        label="query-rss",
        yaml_key="query-rss",
        option="--query-rss",
        help=_ON_OFF,
        doc="Allow the VF to query the PF's RSS configuration.",
        default=False,
        group="query_rss",
        field="rss_query_en",
        kind="bool",
        to_u32=_bool_out,
        from_u32=_flag_in,
    ),
)


@dataclass(frozen=True)
class Group:
    """One IFLA_VF_* attribute (include/uapi/linux/if_link.h, struct ifla_vf_*)."""

    name: str
    nla: str  # pyroute2's name for it
    nla_type: int  # the kernel's number
    spec_key: str  # pyroute2's key in ``ip.link("set", vf={...})``


# In the order the kernel applies them (net/core/rtnetlink.c, do_setvfinfo()): a write that
# fails leaves the ones before it applied. IFLA_VF_VLAN_LIST (12) is written instead of
# IFLA_VF_VLAN for 802.1ad and read for the protocol (``decode``).
GROUPS: tuple[Group, ...] = (
    Group("mac", "IFLA_VF_MAC", 1, "mac"),
    Group("vlan", "IFLA_VF_VLAN", 2, "vlan"),
    Group("rate", "IFLA_VF_RATE", 6, "rate"),
    Group("spoofchk", "IFLA_VF_SPOOFCHK", 4, "spoofchk"),
    Group("link_state", "IFLA_VF_LINK_STATE", 5, "link_state"),
    Group("query_rss", "IFLA_VF_RSS_QUERY_EN", 7, "rss_query_en"),
    Group("trust", "IFLA_VF_TRUST", 9, "trust"),
)
IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 12, 1
# the order ``vfctl set`` plans its writes in (what plans, journals and --json have always shown)
PLAN_ORDER = ("mac", "vlan", "spoofchk", "trust", "link_state", "query_rss", "rate")

NAMES: tuple[str, ...] = tuple(a.name for a in ATTRS)
ATTR: Mapping[str, Attr] = {a.name: a for a in ATTRS}
GROUP: Mapping[str, Group] = {g.name: g for g in GROUPS}
DEFAULTS: Mapping[str, Any] = {a.name: a.default for a in ATTRS}
GROUP_OF: Mapping[str, str] = {a.name: a.group for a in ATTRS}
MEMBERS: Mapping[str, tuple[str, ...]] = {
    g.name: tuple(a.name for a in ATTRS if a.group == g.name) for g in GROUPS
}
FIELDS: Mapping[str, tuple[Attr, ...]] = {
    g.name: tuple(a for a in ATTRS if a.group == g.name and a.field) for g in GROUPS
}
YAML_KEYS: tuple[tuple[str, str], ...] = tuple((a.yaml_key, a.name) for a in ATTRS)
KEY_OF: Mapping[str, str] = {a.name: a.yaml_key for a in ATTRS}
LABEL: Mapping[str, str] = {a.name: a.label for a in ATTRS}


@dataclass(frozen=True)
class Desired:
    """The settings a request asks for, typed (None: leave as it is). The one carrier from the
    CLI, a profile or a pool to the planner (``vfsettings.validate`` normalises it)."""

    mac: str | None = None  # a MAC or "auto"
    vlan: int | None = None
    qos: int | None = None
    vlan_proto: str | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    query_rss: bool | None = None

    def empty(self) -> bool:
        return all(getattr(self, k) is None for k in NAMES)

    def given(self) -> dict[str, Any]:
        """The settings asked for, by name, in table order."""
        return {k: getattr(self, k) for k in NAMES if getattr(self, k) is not None}

    @classmethod
    def from_yaml(cls, entry: Mapping[str, Any]) -> Desired:
        """A profile entry's settings (schema-checked YAML values, keyed by YAML key)."""
        return cls(**{a.name: entry.get(a.yaml_key) for a in ATTRS})


def same(name: str, have: Any, want: Any) -> bool:
    """Whether a reported value is the wanted one (MAC, VLAN protocol: any case)."""
    if ATTR[name].casefold and isinstance(have, str) and isinstance(want, str):
        return have.lower() == want.lower()
    return bool(have == want)


def shown(name: str, v: Any) -> Any:
    """A value as profiles, export and drift spell it (MAC, VLAN protocol: lower case)."""
    return v.lower() if isinstance(v, str) and ATTR[name].casefold else v


def not_default(s: VFSettings) -> dict[str, Any]:
    """The reported settings a re-created VF would not get back by itself (a VLAN protocol
    only counts with a VLAN id or priority)."""
    out = {k: v for k in NAMES if (v := getattr(s, k)) is not None and v != DEFAULTS[k]}
    if out.get("vlan_proto") and not (out.get("vlan") or out.get("qos")):
        del out["vlan_proto"]
    return out


def groups_of(names: Sequence[str]) -> list[str]:
    """The groups these settings belong to, in table (= message) order."""
    return [g for g in dict.fromkeys(GROUP_OF[n] for n in ATTR if n in names)]


# ---------------------------------------------------------------- netlink codec


def encode(vf: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """pyroute2's ``vf=`` argument: each group the settings touch, whole (missing: 0/802.1Q)."""
    spec: dict[str, Any] = {"vf": vf}
    for g in groups_of(list(settings)):
        key = GROUP[g].spec_key
        if g == "mac":
            spec[key] = settings["mac"]
            continue
        vals = {a.field: a.to_u32(settings.get(a.name)) for a in FIELDS[g] if a.field}
        if g == "vlan":
            proto = ETH_P[settings.get("vlan_proto") or "802.1Q"]
            # 802.1Q goes as IFLA_VF_VLAN, as iproute2 sends it: pyroute2 (0.9.7) encodes
            # IFLA_VF_VLAN_INFO in 14 bytes, the kernel wants 16 and answers EINVAL (lab, igb)
            spec[key] = vals if proto == ETH_P["802.1Q"] else [{**vals, "proto": proto}]
        else:
            spec[key] = vals if len(vals) > 1 else next(iter(vals.values()))
    return spec


# (group, ((setting, u32 decoder), ...)) for the groups made of u32s: decode() runs per VF
_DECODERS = tuple(
    (g, tuple((a.name, a.from_u32) for a in attrs)) for g, attrs in FIELDS.items() if attrs
)


def decode(
    u32s: Mapping[str, Sequence[int | None] | None], mac: str | None, ad: bool
) -> VFSettings:
    """One VF's settings from its attributes' u32 fields after ``vf`` (by group; None:
    attribute absent), its MAC and whether IFLA_VF_VLAN_LIST says 802.1ad. Both readers
    (pyroute2 in ``netlink``, raw bytes in ``rtnl``) end here."""
    vals: dict[str, Any] = {"mac": mac}
    for g, decoders in _DECODERS:
        got = u32s.get(g)
        if got:
            for (name, dec), v in zip(decoders, got, strict=False):
                vals[name] = dec(v)
    if u32s.get("vlan"):
        vals["vlan_proto"] = "802.1ad" if ad else "802.1Q"
    return VFSettings(**vals)
