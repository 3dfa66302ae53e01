"""Host → model: PFs, VFs, drivers, netdevs, IOMMU groups, read through one Host root.

Config spaces of all SR-IOV PFs are parsed in one batch call (the C extension when built);
everything else comes from sysfs attributes the kernel already decoded.
"""

from __future__ import annotations

import os
from _collections_abc import Mapping  # collections.abc without the collections package
from itertools import chain, repeat
from operator import attrgetter, is_not

from vfctl import discover_vfs
from vfctl.discover_vfs import hex4 as _hex4
from vfctl.errors import NotFoundError, RefusedError, UsageError
from vfctl.host import holders, vfscan
from vfctl.host.sysfs import CLASS_NET, PCI_DEVICES, Host, check_name, decimal, to_int
from vfctl.model import (
    PF,
    Attachment,
    Device,
    HeldBy,
    HostModel,
    InUse,
    PoolRef,
    VFSettings,
    pf_of_rows,
    pf_with_rows,
    rows_with_settings,
    settings_at,
    vf_rows,
)
from vfctl.pci import address as pciaddr
from vfctl.record import replace

TYPE_CHECKING = False  # typing is not imported at run time (mypy treats this name as True)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    Attachments = Mapping[str, Sequence[Attachment]]
    VfInfo = Mapping[str, Sequence[VFSettings]]  # PF netdev → settings by VF index


def _group(host: Host, dev: str) -> int | None:
    name = host.link_name(f"{dev}/iommu_group")
    return int(name) if name and name.isdigit() else None


def _netdevs(host: Host, dev: str) -> tuple[str, ...]:
    return tuple(host.listdir(f"{dev}/net"))


MAX_VFS = 65535  # TotalVFs/NumVFs are 16-bit registers in the SR-IOV capability


def _count(raw: str | None, attr: str, problems: list[str]) -> int:
    """A VF count attribute, strictly: decimal 0-65535; anything else is reported, not coerced."""
    if raw is not None and decimal(raw, 5) and int(raw) <= MAX_VFS:
        return int(raw)
    shown = "unreadable" if raw is None else f"reads {raw[:24]!r}"
    problems.append(f"{attr} {shown}: not a VF count (0-{MAX_VFS}); treated as 0")
    return 0


def check_sound(pf: PF) -> PF:
    """Refuse (exit 4) to change a PF whose VF counts the kernel reported as garbage."""
    if pf.problems:
        raise RefusedError(
            f"{pf.netdev or pf.address} ({pf.address}): "
            + "; ".join(pf.problems)
            + ": refusing to change it until the kernel reports sane values"
        )
    return pf


def refuse_unsound(model: HostModel, actions: Sequence[object]) -> None:
    """Refuse (exit 4) a plan that touches a PF, or a VF of a PF, whose VF counts are garbage."""
    bad: dict[str, PF] = {}
    for pf in model.pfs:
        if pf.problems:
            bad[pf.address] = pf
            for v in pf.vfs:
                bad[v.address] = pf
    if not bad:
        return
    for a in actions:
        text = f"{getattr(a, 'target', '')} {getattr(a, 'params', '')}"
        for addr, pf in bad.items():
            if addr in text:
                check_sound(pf)


def _bool(v: str | None) -> bool | None:
    return None if v is None else v.strip() not in ("0", "")


def _link(cs: Mapping[str, object] | None) -> str | None:
    pcie = cs.get("pcie") if cs else None
    if not isinstance(pcie, Mapping):
        return None
    speed, width = pcie.get("link_speed"), pcie.get("link_width")
    if not speed or not width:
        return None
    return f"{speed} x{width}"


def parse_configs(host: Host, addresses: Sequence[str]) -> dict[str, dict[str, object]]:
    """Parsed config spaces by address, one batch call; unreadable ones are left out."""
    if not addresses:
        return {}
    from vfctl.pci import configspace

    docs = configspace.parse_files([host.config_path(a) for a in addresses])
    return {a: d for a, d in zip(addresses, docs, strict=True) if "error" not in d}


def discover(
    host: Host,
    attachments: Attachments | None = None,
    vf_info: VfInfo | None = None,
    with_devices: bool = False,
    pools: Mapping[str, PoolRef] | None = None,
    held: Mapping[str, HeldBy] | None = None,
    inuse: bool = False,
) -> HostModel:
    """Read the host into a HostModel; ``attachments`` come from backends, ``vf_info`` from netlink.

    ``pools`` (VF address -> pool) come from a backend too; ``held`` (who holds each VF's
    /dev/vfio group) is read from the host unless given. ``inuse``: also read every in-use
    fact (links, addresses, masters, default routes, vfio holders) for the planners.
    """
    if not os.path.isdir(host.top):
        raise NotFoundError(f"host root {host.root} does not exist")
    if not host.isdir(PCI_DEVICES):
        raise UsageError(
            f"{host.path(PCI_DEVICES)} does not exist: {host.root} is not a sysfs root"
        )
    attachments = attachments or {}
    addrs = host.listdir(PCI_DEVICES)
    # every PF's config space (one batch) and VFs (read in batches)
    found = discover_vfs.pfs_and_vfs(host, addrs, lambda pfs: parse_configs(host, pfs))
    pfs = [
        _pf(
            host,
            a,
            found.configs.get(a),
            found.vfs[a],
            found.attrs[a],
            found.own.get(a),
            attachments,
        )
        for a in found.pfs
    ]
    facts = InUse()
    if inuse:
        from vfctl.host import inuse as inuse_host

        groups = {v.iommu_group for p in pfs for v in p.vfs if v.iommu_group is not None}
        facts = inuse_host.collect(host, groups)
        if held is None:
            vfs_groups = {v.address: v.iommu_group for p in pfs for v in p.vfs}
            held = holders.held_by(host, vfs_groups, group_pids=inuse_host.group_pids(facts))
    if held is None:
        # the address -> group map only once someone holds a group (read first) or reserves
        # one (no VF with a group: the map as it is, reservations still name VFs)
        group_of = (lambda: _vf_groups(pfs)) if _any_group(pfs) else _vf_groups(pfs)
        held = holders.held_by(host, group_of)
    pools = pools or {}
    if held or pools:
        pfs = [
            replace(
                p,
                vfs=tuple(
                    replace(v, held_by=held.get(v.address), pool=pools.get(v.address))
                    if v.address in held or v.address in pools
                    else v  # nothing to fill in: the same (equal) VF
                    for v in p.vfs
                ),
            )
            for p in pfs
        ]
    devices = tuple(_device(host, a) for a in addrs) if with_devices else ()
    m = HostModel(pfs=tuple(pfs), devices=devices, inuse=facts, host_id=host_id(host))
    return with_vf_info(m, vf_info) if vf_info else m


def _column(p: PF, key: str) -> Iterable[Any]:
    """One fact of the PF's VFs, from its columns while its VFs are not made (model.VfRows)."""
    rows = vf_rows(p)
    return rows.column(key) if rows is not None else map(attrgetter(key), p.vfs)


def _vf_groups(pfs: Sequence[PF]) -> dict[str, int | None]:
    """VF address -> IOMMU group, every PF's VFs in order (C-level maps: 16,384 VFs)."""
    addrs = chain.from_iterable(_column(p, "address") for p in pfs)
    groups = chain.from_iterable(_column(p, "iommu_group") for p in pfs)
    return dict(zip(addrs, groups, strict=True))


def _any_group(pfs: Sequence[PF]) -> bool:
    """Whether some VF has an IOMMU group (C-level: stops at the first one)."""
    groups = chain.from_iterable(_column(p, "iommu_group") for p in pfs)
    return any(map(is_not, groups, repeat(None)))


def host_id(host: Host) -> str:
    """Stable per-host identity for derived MACs: machine-id, else hostname."""
    return (host.read_opt("etc/machine-id") or host.read_opt("etc/hostname") or "localhost").strip()


def with_vf_info(m: HostModel, vf_info: VfInfo) -> HostModel:
    """The model with each VF's netlink settings (by PF netdev and VF index) filled in.

    VFs not made yet (model.VfRows) get them as a settings column and stay unmade: a real
    PF driver reports every VF, so making them here would cost a ``replace`` per VF (~190 ms
    for 16,384 VFs) that the JSON never needs."""
    pfs = []
    for pf in m.pfs:
        settings = list(vf_info.get(pf.netdev or "", ())) if pf.netdev else []
        rows = vf_rows(pf) if settings else None
        if rows is not None:
            pf = pf_with_rows(pf, rows_with_settings(rows, settings))
        elif settings:
            vfs = tuple(
                replace(v, settings=settings_at(settings, v.index, v.settings)) for v in pf.vfs
            )
            pf = replace(pf, vfs=vfs)
        pfs.append(pf)
    return replace(m, pfs=tuple(pfs))


def _device(host: Host, a: str) -> Device:
    d = f"{PCI_DEVICES}/{a}"
    cls = (host.read_opt(f"{d}/class") or "0x000000").lower().removeprefix("0x")
    return Device(
        address=a,
        driver=host.link_name(f"{d}/driver"),
        class_code=cls,
        netdevs=_netdevs(host, d),
        iommu_group=_group(host, d),
        is_bridge=cls.startswith("0604"),
        physfn=host.link_name(f"{d}/physfn"),
    )


def _pf(
    host: Host,
    a: str,
    cs: dict[str, object] | None,
    cols: discover_vfs.VfCols,
    raw: Mapping[str, str | None],
    own: vfscan.Raw | None,
    attachments: Attachments,
) -> PF:
    d = f"{PCI_DEVICES}/{a}"
    if own is None:  # a name the batch leaves alone: read through Host
        own = (host.link_name(f"{d}/driver"), None, host.link_name(f"{d}/iommu_group"),
               list(_netdevs(host, d)))  # fmt: skip
    driver, _, group, netdev_list = own
    sriov = cs.get("sriov") if cs else None
    sr: Mapping[str, object] = sriov if isinstance(sriov, Mapping) else {}
    netdevs = tuple(netdev_list)
    netdev = netdevs[0] if netdevs else None
    offset = to_int(raw["sriov_offset"], 10)  # read in one batch with the VFs
    stride = to_int(raw["sriov_stride"], 10)
    if offset is None and isinstance(sr.get("vf_offset"), int):
        offset = sr["vf_offset"]  # type: ignore[assignment]
    if stride is None and isinstance(sr.get("vf_stride"), int):
        stride = sr["vf_stride"]  # type: ignore[assignment]
    vf_dev = raw["sriov_vf_device"]
    if vf_dev is None and isinstance(sr.get("vf_device_id"), str):
        vf_dev = str(sr["vf_device_id"])
    vendor = _hex4(raw["vendor"])
    device = _hex4(raw["device"])
    # a VF's vendor is its PF's and its device the PF's SR-IOV VF Device ID: the kernel sets
    # them so (drivers/pci/iov.c, pci_iov_add_virtfn()/pci_read_vf_config_common()) because
    # a VF's own ID registers read 0xffff; only without that ID are the VF's files read
    vf_device = _hex4(vf_dev) if vf_dev else None
    notes: list[str] = []
    problems: list[str] = []
    total_vfs = _count(raw["sriov_totalvfs"], "sriov_totalvfs", problems)
    num_vfs = _count(raw["sriov_numvfs"], "sriov_numvfs", problems)
    ids = (vendor, vf_device) if vf_device else None
    rows = discover_vfs.vf_rows(host, a, cols, offset, stride, ids, notes)
    ari = cs.get("ari") if cs else None
    cap_total = sr.get("total_vfs")
    initial = sr.get("initial_vfs")
    fields: dict[str, Any] = dict(
        address=a,
        netdev=netdev,
        netdevs=netdevs,
        driver=driver,
        vendor_id=vendor,
        device_id=device,
        class_code=(raw["class"] or "0x000000").lower().removeprefix("0x"),
        name=None,
        total_vfs=total_vfs,
        cap_total_vfs=cap_total if isinstance(cap_total, int) else None,
        initial_vfs=initial if isinstance(initial, int) else None,
        num_vfs=num_vfs,
        vf_offset=offset,
        vf_stride=stride,
        vf_device_id=_hex4(vf_dev) if vf_dev else None,
        autoprobe=_bool(raw["sriov_drivers_autoprobe"]),
        numa_node=to_int(raw["numa_node"], 10),
        iommu_group=int(group) if group and group.isdigit() else None,
        link=_link(cs),
        ari=isinstance(ari, Mapping),
        notes=tuple(notes),
        problems=tuple(problems),
    )
    # VFs made when read (model.VfRows), unless a backend attached some of them
    attached = any(map(attachments.__contains__, cols.address)) if attachments else False
    if attached or not rows.n:
        return PF(vfs=discover_vfs.make_vfs(rows, attachments), **fields)
    return pf_of_rows(rows, **fields)


def resolve_pf(model: HostModel, name: str, host: Host | None = None) -> PF:
    """A PF by netdev or PCI address; NotFound lists the PFs that exist."""
    check_name(name, "PF name")
    wanted: str | None = None
    if ":" in name:  # netdev names cannot hold ':' (dev_valid_name), so it is an address
        wanted = pciaddr.normalize(name)
    elif host is not None and ":" not in name:
        # a netdev of the PF given by name even if several netdevs hang off one function
        target = host.link_rel(f"{CLASS_NET}/{name}")
        if target:
            parts = target.split("/")
            if "net" in parts:
                cand = parts[parts.index("net") - 1]
                if pciaddr.looks_like_address(cand):
                    wanted = cand
    for pf in model.pfs:
        if pf.address == wanted or name in pf.netdevs:
            return pf
    have = ", ".join(f"{p.netdev or '-'} ({p.address})" for p in model.pfs) or "none"
    if wanted and host is not None and host.exists(f"{PCI_DEVICES}/{wanted}"):
        raise NotFoundError(f"{wanted} is not an SR-IOV physical function; SR-IOV PFs: {have}")
    raise NotFoundError(f"no SR-IOV PF named {name!r}; SR-IOV PFs: {have}")


def parse_vf_selector(text: str, pf: PF, allow_absent: bool = False) -> list[int]:
    """VF indexes from ``vf3``, ``3``, a VF address, ``vf0-3,7`` or ``all``."""
    import re  # only here: a listing never parses a VF range

    limit = pf.num_vfs if not allow_absent else pf.total_vfs
    if text.strip().lower() == "all":
        return [v.index for v in pf.vfs]
    out: list[int] = []
    for part in text.split(","):
        p = part.strip()
        if pciaddr.looks_like_address(p):
            addr = pciaddr.normalize(p)
            match = [v.index for v in pf.vfs if v.address == addr]
            if not match:
                raise NotFoundError(f"{addr} is not a VF of {pf.netdev or pf.address}")
            out.extend(match)
            continue
        m = re.fullmatch(r"(?:vf)?(\d+)(?:-(?:vf)?(\d+))?", p, re.IGNORECASE)
        if not m:
            raise UsageError(
                f"invalid VF {p!r}: expected vf3, 3, vf0-3,7, all or a VF's PCI address"
            )
        lo = int(m[1])
        hi = int(m[2]) if m[2] else lo
        if hi < lo:
            raise UsageError(f"invalid VF range {p!r}: end before start")
        for i in range(lo, hi + 1):
            if i >= limit:
                raise NotFoundError(
                    f"VF {i} out of range for {pf.netdev or pf.address}: it has {limit} VFs"
                    + (f" (indexes 0-{limit - 1})" if limit else "")
                )
            out.append(i)
    return sorted(set(out))
