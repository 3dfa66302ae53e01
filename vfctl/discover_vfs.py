"""Every PF's VFs for discovery: read in batches, kept as columns, made into VFs at once.

A big host has tens of thousands of VFs, so per VF this does only the syscalls nothing else
can answer (see vfctl/host/vfscan.py) and, in Python, no loop of its own where a C-level
``map`` over a column does: one list per fact (index, address, driver, override, group,
netdev), each built by one call. Oddities (non-canonical ``virtfn`` names, targets the batch
refuses) take the per-VF path through Host, with the same results.

VF addresses come from the PF's First VF Offset and VF Stride (vfctl/discover_derive.py),
not from a readlink of each ``virtfnN``; wherever that could disagree with the kernel's
links, the links are read, and if they differ the whole read is redone from the links.
"""

from __future__ import annotations

from itertools import repeat

from vfctl import discover_derive as derive
from vfctl.host import vfscan
from vfctl.host.sysfs import CLASS_NET, PCI_DEVICES, PCI_DRIVERS, Host
from vfctl.model import VF, Attachment, VfRows, VFSettings
from vfctl.pci import address as pciaddr
from vfctl.record import replace

_ODD = ("", ".", "..")


class VfCols:
    """One PF's VFs in index order, one list per fact, as read (override and group raw).

    A plain class: a dataclass costs a compile at every start of the CLI."""

    __slots__ = ("address", "derived", "driver", "group", "index", "netdev", "override")

    def __init__(self, index: list[int] | None = None, address: list[str] | None = None) -> None:
        self.index: list[int] = index if index is not None else []
        self.address: list[str] = address if address is not None else []
        self.derived = False  # addresses from offset/stride (they agree with it by making)
        self.driver: list[str | None] = []
        self.override: list[str | None] = []
        self.group: list[int | str | None] = []  # vfscan.columns(): int where digits
        self.netdev: list[str | None] = []  # the first netdev


def _virtfns(host: Host, dev: str) -> list[tuple[int, str]]:
    out = []
    for name in host.listdir(dev):
        n = name[6:]
        if name.startswith("virtfn") and n.isdecimal():  # re's virtfn(\d+): Unicode digits
            target = host.link_name(f"{dev}/{name}")
            if target:
                out.append((int(n), target))
    return sorted(out)


_CANON: dict[int, frozenset[str]] = {}  # k -> {virtfn0 … virtfn<k-1>}, made once per k


def _virtfn_indexes(names: list[str]) -> list[int] | None:
    """VF indexes from the PF's entry names; None when a ``virtfn`` name is not canonical."""
    names = [n for n in names if n.startswith("virtfn")]
    canon = _CANON.get(len(names))
    if canon is None:
        canon = _CANON[len(names)] = frozenset(f"virtfn{i}" for i in range(len(names)))
    if canon.issuperset(names):  # k distinct names (one listing), each one of the k
        return list(range(len(names)))  # the kernel's names: virtfn0 … virtfn<k-1>
    out = []
    for name in names:
        n = name[6:]
        if not (n.isascii() and n.isdigit()):
            if n.isdecimal():
                return None  # other digits: read as before
            continue
        if n != str(int(n)):  # virtfn007: the kernel never names so; read as before
            return None
        out.append(int(n))
    return sorted(out)


def _raw_via_host(host: Host, vaddr: str) -> vfscan.Raw:
    """One VF's facts through Host, for what the batch leaves alone (odd names)."""
    vd = f"{PCI_DEVICES}/{vaddr}"
    return (
        host.link_name(f"{vd}/driver"),
        host.read_opt(f"{vd}/driver_override"),
        host.link_name(f"{vd}/iommu_group"),
        host.listdir(f"{vd}/net"),
    )


# every PF attribute a PF record shows, read in one batch per PF
PF_ATTRS = (
    *derive.ATTRS,
    "sriov_totalvfs",
    "sriov_vf_device",
    "sriov_drivers_autoprobe",
    "vendor",
    "device",
    "class",
    "numa_node",
)
Configs = dict[str, dict[str, object]]
Attrs = dict[str, dict[str, str | None]]  # PF -> its PF_ATTRS as Host.read_opt gives them


class Found:
    """What discovery reads of the PFs and their VFs here, handed on to the PF records."""

    __slots__ = ("attrs", "configs", "own", "pfs", "vfs")

    def __init__(self, pfs: list[str], vfs: dict[str, VfCols], configs: Configs, attrs: Attrs):
        self.pfs, self.vfs, self.configs, self.attrs = pfs, vfs, configs, attrs
        self.own: dict[str, vfscan.Raw] = {}  # each PF's driver, override, group, netdevs


def pfs_and_vfs(
    host: Host,
    addrs: Sequence[str],
    parse: Callable[[list[str]], Configs],
    use_derived: bool = True,
) -> Found:
    """SR-IOV PFs (the functions with ``sriov_totalvfs``), their parsed config spaces
    (``parse``, one batch) and each one's VFs, in index order.

    A VF is not probed as a PF again: the kernel shows ``sriov_*`` on PFs only
    (drivers/pci/iov.c, sriov_pf_attrs_are_visible()). VF addresses are derived from
    offset/stride where discover_derive allows it; when a check there or after the batch
    finds a PF whose ``virtfnN`` links differ from the derived addresses, all of it is read
    again from the links (``use_derived=False``): the listing shows the kernel's links.
    """
    devdir = host.path_str(PCI_DEVICES)
    names = addrs if isinstance(addrs, list) else list(addrs)
    listed: frozenset[str] | None = None  # the listing as a set, made only when needed
    pfs: list[str] = []
    pairs: dict[str, tuple[list[int], list[str]]] = {}
    attrs: Attrs = {}
    derived: dict[str, derive.Rule] = {}
    # VFs to skip when the listing reaches them: those not found as a run right after their
    # PF (a run is skipped by position: the usual host needs no set of its VFs at all)
    seen: set[str] = set()
    order: list[str] = []  # every VF found, in the order found
    cur, n = 0, len(names)
    while cur < n:
        a = names[cur]
        cur += 1
        if a in seen or not host.exists(f"{PCI_DEVICES}/{a}/sriov_totalvfs"):
            continue
        pfs.append(a)
        d = f"{PCI_DEVICES}/{a}"
        vals = vfscan.reads(devdir, [f"{a}/{k}" for k in PF_ATTRS])  # as Host.read_opt reads
        raw = {k: v if v is None else v.strip() for k, v in zip(PF_ATTRS, vals, strict=True)}
        attrs[a] = raw
        idx = derive.indexes(host, a, raw) if use_derived else None
        rule = derive.rule(a, idx, raw) if idx else None
        got, after = None, False
        if rule:
            cand = derive.run(a, rule)
            # listed devices: usually the listing's next entries (a C-level compare), else
            # looked up (PFs whose VFs interleave, 82599-style, or sit past another device)
            ahead = names[cur : cur + len(cand)]
            after = ahead == cand
            if not after and listed is None:
                listed = frozenset(names)
            in_listing = after or (listed is not None and listed.issuperset(cand))
            if in_listing and derive.sampled(host, a, cand):
                got = ahead if after else cand  # the listing's own str where they are its entries
        if got is None:  # not derived: the PF's listing says which links there are
            idx = _virtfn_indexes(host.names(d))  # unsorted: only virtfn names count
        if got is not None and idx is not None:
            pairs[a] = (idx, got)
            derived[a] = rule  # type: ignore[assignment]  # a rule when got is not None
        elif idx is None:
            found = _virtfns(host, d)
            pairs[a] = ([i for i, _ in found], [t for _, t in found])
        else:
            links = vfscan.links(devdir, [f"{a}/virtfn{i}" for i in idx]) if idx else []
            if all(links):
                pairs[a] = (idx, links)  # type: ignore[assignment]  # all str: none missing
            else:
                kept = [(i, t) for i, t in zip(idx, links, strict=True) if t]
                pairs[a] = ([i for i, _ in kept], [t for _, t in kept])
        targets = pairs[a][1]
        if got is not None and after:
            cur += len(targets)  # the run is these VFs: not probed as PFs, as a set would skip them
        else:
            seen.update(targets)
        order += targets
    configs = parse(pfs)
    odd = [a for a, r in derived.items() if not derive.agrees(configs.get(a), r)]
    if odd and not _links_agree(devdir, odd, pairs):
        return pfs_and_vfs(host, addrs, parse, use_derived=False)
    if seen:  # every VF once (a target two PFs name is read once, where first found)
        every = set(order)
        plain = _plain(order if len(order) == len(every) else list(dict.fromkeys(order)), every)
    else:  # runs of the listing only: distinct names, each a derived (plain) address
        plain = order
    flags, drivers, nets = bulk_listings(host, len(plain))
    scanned = vfscan.columns(devdir, plain, flags)  # one list per fact, in plain's order
    if drivers is not None:  # each VF's driver from the drivers' own listings, one column
        owners = vfscan.owners(host.path_str(PCI_DRIVERS), drivers, plain)
        scanned = (owners, *scanned[1:])
    drv_col, ovr_col, grp_col, net_col = scanned
    first_net = None if nets is None else {a: n[0] for a, n in nets.items() if n}
    # each VF once and none odd (plain is every PF's targets, in order): slices of the scan
    runs = len(plain) == sum(len(pairs[a][1]) for a in pfs)
    where: dict[str, int] = {} if runs else {t: i for i, t in enumerate(plain)}
    at = 0
    out: dict[str, VfCols] = {}
    for a in pfs:
        idx, targets = pairs[a]
        cols = VfCols(idx, targets)
        if runs:
            part: slice | list[int] = slice(at, at + len(targets))
            at += len(targets)
        else:
            pos = list(map(where.get, targets))
            if None in pos:  # a target the batch left alone: through Host, as read
                out[a] = _cols_slowly(host, idx, targets, where, scanned, nets)
                continue
            part = pos  # type: ignore[assignment]  # all int: none missing
        cols.override, cols.group = _take(ovr_col, part), _take(grp_col, part)
        cols.driver = _take(drv_col, part)  # type: ignore[arg-type]  # a column: listed or read
        if first_net is not None:
            cols.netdev = list(map(first_net.get, targets))
        else:
            cols.netdev = [n[0] if n else None for n in _take(net_col, part)]  # type: ignore[arg-type]
        out[a] = cols
    # every PCI function has driver_override (drivers/pci/pci-sysfs.c): a derived VF without
    # one may be gone (the PF mid-change) or no VF at all; its PF's links settle it
    missing = [a for a in derived if None in out[a].override]
    if missing and not _links_agree(devdir, missing, pairs):
        return pfs_and_vfs(host, addrs, parse, use_derived=False)
    for a in derived:
        out[a].derived = True
    res = Found(pfs, out, configs, attrs)
    # the PFs' own driver, group and netdevs: the same reads as the VFs', in one batch
    own = _plain(pfs)
    res.own = dict(zip(own, vfscan.scan(devdir, own), strict=True))
    return res


TYPE_CHECKING = False  # typing is not imported at run time (mypy treats this name as True)
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence
    from typing import TypeVar

    T = TypeVar("T")


def _take(col: list[T], part: slice | list[int]) -> list[T]:
    """A PF's run of a scan column: a slice, or the VFs' positions where targets repeat."""
    return col[part] if isinstance(part, slice) else [col[i] for i in part]


def _plain(names: list[str], having: Collection[str] | None = None) -> list[str]:
    """The names the batch reads (vfscan.odd: not one path component), in order; ``having``:
    the same names as a set, for the membership checks."""
    has = (having if having is not None else frozenset(names)).__contains__
    if max(map(len, names), default=0) <= 63 and not any(map(has, _ODD)):
        return names  # every one a plain name (C-level checks: 16,384 of them)
    return [t for t in names if (len(t) <= 63 and t not in _ODD) or not vfscan.odd(t)]


def _links_agree(
    devdir: str, pfs: Sequence[str], pairs: Mapping[str, tuple[list[int], list[str]]]
) -> bool:
    """Whether these PFs' ``virtfnN`` links (one batch) are their derived addresses."""
    paths = [f"{a}/virtfn{i}" for a in pfs for i in pairs[a][0]]
    return vfscan.links(devdir, paths) == [t for a in pfs for t in pairs[a][1]]


def _cols_slowly(
    host: Host,
    idx: list[int],
    targets: list[str],
    where: Mapping[str, int],
    scanned: vfscan.Cols,
    nets: Mapping[str, list[str]] | None,
) -> VfCols:
    cols = VfCols(list(idx), list(targets))
    drv_col, ovr_col, grp_col, net_col = scanned
    for t in targets:
        i = where.get(t)
        grp: int | str | None
        if i is None:
            drv, ovr, grp, netl = _raw_via_host(host, t)
        else:
            drv = drv_col[i]  # type: ignore[index]  # the listed drivers' column, or the scan's
            ovr, grp = ovr_col[i], grp_col[i]
            netl = nets.get(t, []) if nets is not None else net_col[i]  # type: ignore[index]
        cols.driver.append(drv)
        cols.override.append(ovr)
        cols.group.append(grp)
        cols.netdev.append(netl[0] if netl else None)
    return cols


def bulk_listings(
    host: Host, n_vfs: int
) -> tuple[int, list[str] | None, dict[str, list[str]] | None]:
    """Drivers and netdevs of all VFs from one listing each, when that costs fewer syscalls:
    the drivers to list (``vfscan.owners`` lists them, in C when built) and the netdevs.

    The kernel links both ways: ``drivers/<drv>/<bdf>`` with ``<bdf>/driver``
    (drivers/base/dd.c, driver_sysfs_add()), and ``class/net/<if>`` to ``<bdf>/net/<if>``.
    A driver directory costs about four syscalls to list and a netdev link one readlink, against
    a readlink (driver) and an open (net) per VF.
    """
    flags = 0
    drivers: list[str] | None = None
    nets: dict[str, list[str]] | None = None
    if n_vfs < 16:
        return flags, drivers, nets
    names = host.listdir(PCI_DRIVERS)
    if len(names) * 4 < n_vfs:
        drivers = names  # each listed in order: a device in two lists is the last one's
        flags |= vfscan.SKIP_DRIVER
    ifnames = host.listdir(CLASS_NET)
    if len(ifnames) < n_vfs:
        nets = {}
        # no sys/class/net (a copied tree): no netdevs, and no directory to open
        got = vfscan.links(host.path_str(CLASS_NET), ifnames, full=True) if ifnames else []
        for name, target in zip(ifnames, got, strict=True):
            parts = (target or "").split("/")
            if len(parts) >= 3 and parts[-2] == "net" and parts[-1] == name:
                nets.setdefault(parts[-3], []).append(name)  # ifnames are sorted already
        flags |= vfscan.SKIP_NET
    return flags, drivers, nets


class _Overrides(dict[str | None, str | None]):
    """driver_override as read → as shown (a handful of distinct values: each done once)."""

    def __missing__(self, raw: str | None) -> str | None:
        v = raw.strip() if raw is not None else None
        self[raw] = v = None if v in ("", "(null)") else v
        return v


_EMPTY = VFSettings()  # frozen: one instance serves every VF until netlink fills them in


def vf_rows(
    host: Host,
    pf: str,
    cols: VfCols,
    offset: int | None,
    stride: int | None,
    ids: tuple[str, str] | None,
    notes: list[str],
) -> VfRows:
    """The PF's VFs from its columns, as ``VF.plain``'s columns (made into VFs only when
    read: model.VfRows); mismatches of virtfnN and offset/stride go to ``notes``.

    ``ids``: (vendor, device) of every VF, from the PF (None: read each VF's own files).
    """
    addrs = cols.address
    if offset is not None and stride is not None and not cols.derived:
        expects = pciaddr.vf_addresses(pf, offset, stride, cols.index)
        if expects != addrs:
            for i, e, got in zip(cols.index, expects, addrs, strict=True):
                if e != got:  # virtfnN is the kernel's truth; a mismatch is a quirk worth showing
                    notes.append(f"virtfn{i} is {got}, offset/stride say {e}")
    vids: str | list[str]
    dids: str | list[str]
    if ids is not None:
        vids, dids = ids  # the same in every row
    else:
        vids = [hex4(host.read_opt(f"{PCI_DEVICES}/{a}/vendor")) for a in addrs]
        dids = [hex4(host.read_opt(f"{PCI_DEVICES}/{a}/device")) for a in addrs]
    groups = _groups(cols.group)
    overrides = list(map(_Overrides().__getitem__, cols.override))
    # VF.plain's columns (jsonrows.objects makes the VFs from them in one call, C or Python)
    row = (cols.index, addrs, cols.driver, overrides, cols.netdev, groups, vids, dids, _EMPTY)
    return VfRows(row, len(addrs))


def make_vfs(rows: VfRows, attachments: Mapping[str, Sequence[Attachment]]) -> tuple[VF, ...]:
    """The VFs of ``rows`` now, with what the backends attached to them."""
    vfs = rows.make()
    if not attachments:
        return vfs
    return tuple(
        replace(v, attached_to=tuple(att)) if (att := attachments.get(v.address)) else v
        for v in vfs
    )


def _groups(raw: list[int | str | None]) -> list[int | None]:
    """IOMMU group numbers (vfscan.columns() made the kernel's names ints already); None where
    a name is not digits."""
    if all(map(isinstance, raw, repeat(int))):  # the kernel's names: the column as it is
        return raw  # type: ignore[return-value]
    return [g if isinstance(g, int) else int(g) if g and g.isdigit() else None for g in raw]


def hex4(v: str | None) -> str:
    """A 4-digit lower-case hex id from a sysfs ``0x8086``; ``????`` when unreadable."""
    if not v:
        return "????"
    return v.lower().removeprefix("0x").rjust(4, "0")[-4:]
