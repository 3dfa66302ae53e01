"""Host → model: PFs, VFs, drivers, netdevs, IOMMU groups, read through one Host root.

Config spaces of all SR-IOV PFs are parsed in one batch call (the C extension when built);
everything else comes from sysfs attributes the kernel already decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from vfctl.errors import NotFoundError, RefusedError, UsageError
from vfctl.host import holders, vfscan
from vfctl.host.sysfs import CLASS_NET, IOMMU_GROUPS, PCI_DEVICES, PCI_DRIVERS, Host, check_name
from vfctl.model import (
    PF,
    VF,
    Attachment,
    Device,
    HeldBy,
    HostModel,
    InUse,
    PoolRef,
    VFSettings,
)
from vfctl.pci import address as pciaddr

Attachments = Mapping[str, Sequence[Attachment]]
VfInfo = Mapping[str, Sequence[VFSettings]]  # PF netdev → settings by VF index
VfRows = list[tuple[int, str, "vfscan.Raw"]]  # (index, address, facts) of one PF's VFs
_NONE: list[str] = []  # no netdevs (never mutated)
_ODD = ("", ".", "..")


def _hex4(v: str | None) -> str:
    if not v:
        return "????"
    return v.lower().removeprefix("0x").rjust(4, "0")[-4:]


def _group(host: Host, dev: str) -> int | None:
    name = host.link_name(f"{dev}/iommu_group")
    return int(name) if name and name.isdigit() else None


def _netdevs(host: Host, dev: str) -> tuple[str, ...]:
    return tuple(host.listdir(f"{dev}/net"))


MAX_VFS = 65535  # TotalVFs/NumVFs are 16-bit registers in the SR-IOV capability


def _count(host: Host, d: str, attr: str, problems: list[str]) -> int:
    """A VF count attribute, strictly: decimal 0-65535; anything else is reported, not coerced."""
    raw = host.read_opt(f"{d}/{attr}")
    if raw is not None and re.fullmatch(r"[0-9]{1,5}", raw) and int(raw) <= MAX_VFS:
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


def _override(v: str | None) -> str | None:
    return None if v in (None, "", "(null)") else v


def _virtfns(host: Host, dev: str) -> list[tuple[int, str]]:
    out = []
    for name in host.listdir(dev):
        m = re.fullmatch(r"virtfn(\d+)", name)
        if m:
            target = host.link_name(f"{dev}/{name}")
            if target:
                out.append((int(m[1]), target))
    return sorted(out)


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
    if not host.root.is_dir():
        raise NotFoundError(f"host root {host.root} does not exist")
    if not host.isdir(PCI_DEVICES):
        raise UsageError(
            f"{host.path(PCI_DEVICES)} does not exist: {host.root} is not a sysfs root"
        )
    attachments = attachments or {}
    addrs = host.listdir(PCI_DEVICES)
    pf_addrs, vfs = _pfs_and_vfs(host, addrs)  # every PF's VFs read in batches
    configs = parse_configs(host, pf_addrs)
    pfs = [_pf(host, a, configs.get(a), vfs[a], attachments) for a in pf_addrs]
    facts = InUse()
    if inuse:
        from vfctl.host import inuse as inuse_host

        groups = {v.iommu_group for p in pfs for v in p.vfs if v.iommu_group is not None}
        facts = inuse_host.collect(host, groups)
        if held is None:
            vfs_groups = {v.address: v.iommu_group for p in pfs for v in p.vfs}
            held = holders.held_by(host, vfs_groups, group_pids=inuse_host.group_pids(facts))
    if held is None:
        held = holders.held_by(host, {v.address: v.iommu_group for p in pfs for v in p.vfs})
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
    iommu = bool(host.listdir(IOMMU_GROUPS))
    m = HostModel(pfs=tuple(pfs), devices=devices, iommu_enabled=iommu, inuse=facts)
    return with_vf_info(m, vf_info) if vf_info else m


def with_vf_info(m: HostModel, vf_info: VfInfo) -> HostModel:
    """The model with each VF's netlink settings (by PF netdev and VF index) filled in."""
    pfs = []
    for pf in m.pfs:
        settings = list(vf_info.get(pf.netdev or "", ())) if pf.netdev else []
        if settings:
            vfs = tuple(
                replace(v, settings=settings[v.index]) if v.index < len(settings) else v
                for v in pf.vfs
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


def _virtfn_indexes(host: Host, dev: str) -> list[int] | None:
    """VF indexes from the PF's ``virtfnN`` names; None when a name is not canonical."""
    names = [n for n in host.listdir(dev) if n.startswith("virtfn")]
    if set(names) == {f"virtfn{i}" for i in range(len(names))}:
        return list(range(len(names)))  # the kernel's names: virtfn0 … virtfn<k-1>
    out = []
    for name in names:
        if name.startswith("virtfn"):
            n = name[6:]
            if not (n.isascii() and n.isdigit()):
                if re.fullmatch(r"\d+", n):
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
        list(_netdevs(host, vd)),
    )


def _pfs_and_vfs(host: Host, addrs: Sequence[str]) -> tuple[list[str], dict[str, VfRows]]:
    """SR-IOV PFs (the functions with ``sriov_totalvfs``) and each one's VFs, in index order.

    A ``virtfnN`` target is a VF, and the kernel shows ``sriov_*`` on PFs only
    (drivers/pci/iov.c, sriov_pf_attrs_are_visible()), so a PF's VFs are not probed again.
    """
    devdir = str(host.path(PCI_DEVICES))
    pfs: list[str] = []
    pairs: dict[str, list[tuple[int, str]]] = {}
    vf_addrs: dict[str, None] = {}  # every VF once, in the order found
    for a in addrs:
        if a in vf_addrs or not host.exists(f"{PCI_DEVICES}/{a}/sriov_totalvfs"):
            continue
        pfs.append(a)
        idx = _virtfn_indexes(host, f"{PCI_DEVICES}/{a}")
        if idx is None:
            pairs[a] = _virtfns(host, f"{PCI_DEVICES}/{a}")
        else:
            got = vfscan.links(devdir, [f"{a}/virtfn{i}" for i in idx]) if idx else []
            pairs[a] = [(i, t) for i, t in zip(idx, got, strict=True) if t]
        vf_addrs.update(dict.fromkeys([t for _, t in pairs[a]]))
    plain = [t for t in vf_addrs if (len(t) <= 63 and t not in _ODD) or not vfscan.odd(t)]
    flags, drivers, nets = _bulk_listings(host, len(plain))
    raws = dict(zip(plain, vfscan.scan(devdir, plain, flags), strict=True))
    out: dict[str, VfRows] = {}
    for a in pfs:
        rows: VfRows = []
        for i, t in pairs[a]:
            raw = raws.get(t)
            if raw is None:
                rows.append((i, t, _raw_via_host(host, t)))
            elif drivers is None and nets is None:
                rows.append((i, t, raw))
            else:
                drv = raw[0] if drivers is None else drivers.get(t)
                netdevs = raw[3] if nets is None else nets.get(t, _NONE)
                rows.append((i, t, (drv, raw[1], raw[2], netdevs)))
        out[a] = rows
    return pfs, out


def _bulk_listings(
    host: Host, n_vfs: int
) -> tuple[int, dict[str, str] | None, dict[str, list[str]] | None]:
    """Drivers and netdevs of all VFs from one listing each, when that costs fewer syscalls.

    The kernel links both ways: ``drivers/<drv>/<bdf>`` with ``<bdf>/driver``
    (drivers/base/dd.c, driver_sysfs_add()), and ``class/net/<if>`` to ``<bdf>/net/<if>``.
    A driver directory costs about four syscalls to list and a netdev link one readlink, against
    a readlink (driver) and an open (net) per VF.
    """
    flags = 0
    drivers: dict[str, str] | None = None
    nets: dict[str, list[str]] | None = None
    if n_vfs < 16:
        return flags, drivers, nets
    names = host.listdir(PCI_DRIVERS)
    if len(names) * 4 < n_vfs:
        drivers = {}
        for drv in names:
            for entry in host.listdir(f"{PCI_DRIVERS}/{drv}"):
                if ":" in entry:
                    drivers[entry] = drv
        flags |= vfscan.SKIP_DRIVER
    ifnames = host.listdir(CLASS_NET)
    if len(ifnames) < n_vfs:
        nets = {}
        got = vfscan.links(str(host.path(CLASS_NET)), ifnames, full=True)
        for name, target in zip(ifnames, got, strict=True):
            parts = (target or "").split("/")
            if len(parts) >= 3 and parts[-2] == "net" and parts[-1] == name:
                nets.setdefault(parts[-3], []).append(name)  # ifnames are sorted already
        flags |= vfscan.SKIP_NET
    return flags, drivers, nets


def _pf(
    host: Host,
    a: str,
    cs: dict[str, object] | None,
    rows: VfRows,
    attachments: Attachments,
) -> PF:
    d = f"{PCI_DEVICES}/{a}"
    sriov = cs.get("sriov") if cs else None
    sr: Mapping[str, object] = sriov if isinstance(sriov, Mapping) else {}
    netdevs = _netdevs(host, d)
    netdev = netdevs[0] if netdevs else None
    offset = host.read_int(f"{d}/sriov_offset", 10)
    stride = host.read_int(f"{d}/sriov_stride", 10)
    if offset is None and isinstance(sr.get("vf_offset"), int):
        offset = sr["vf_offset"]  # type: ignore[assignment]
    if stride is None and isinstance(sr.get("vf_stride"), int):
        stride = sr["vf_stride"]  # type: ignore[assignment]
    vf_dev = host.read_opt(f"{d}/sriov_vf_device")
    if vf_dev is None and isinstance(sr.get("vf_device_id"), str):
        vf_dev = str(sr["vf_device_id"])
    vendor = _hex4(host.read_opt(f"{d}/vendor"))
    device = _hex4(host.read_opt(f"{d}/device"))
    # a VF's vendor is its PF's and its device the PF's SR-IOV VF Device ID: the kernel sets
    # them so (drivers/pci/iov.c, pci_iov_add_virtfn()/pci_read_vf_config_common()) because
    # a VF's own ID registers read 0xffff; only without that ID are the VF's files read
    vf_device = _hex4(vf_dev) if vf_dev else None
    vfs = []
    notes: list[str] = []
    problems: list[str] = []
    total_vfs = _count(host, d, "sriov_totalvfs", problems)
    num_vfs = _count(host, d, "sriov_numvfs", problems)
    expects: list[str | None] = [None] * len(rows)
    if offset is not None and stride is not None:
        expects[:] = pciaddr.vf_addresses(a, offset, stride, [r[0] for r in rows])
    empty = VFSettings()  # frozen: one instance serves every VF until netlink fills them in
    if vf_device:
        ids: tuple[str, str] | None = (vendor, vf_device)
    else:
        ids = None
    new_vf = VF.plain
    for (idx, vaddr, (driver, override, group, nets)), expect in zip(rows, expects, strict=True):
        if expect != vaddr and expect is not None:
            # virtfnN is the kernel's truth; a mismatch is a quirk worth showing
            notes.append(f"virtfn{idx} is {vaddr}, offset/stride say {expect}")
        if override is not None:
            override = override.strip()
            if override in ("", "(null)"):
                override = None
        if ids is None:
            vd = f"{PCI_DEVICES}/{vaddr}"
            vid, did = _hex4(host.read_opt(f"{vd}/vendor")), _hex4(host.read_opt(f"{vd}/device"))
        else:
            vid, did = ids
        v = new_vf(
            idx,
            vaddr,
            driver,
            override,
            nets[0] if nets else None,
            int(group) if group and group.isdigit() else None,
            vid,
            did,
            empty,
        )
        att = attachments.get(vaddr) if attachments else None
        vfs.append(replace(v, attached_to=tuple(att)) if att else v)
    ari = cs.get("ari") if cs else None
    cap_total = sr.get("total_vfs")
    initial = sr.get("initial_vfs")
    return PF(
        address=a,
        netdev=netdev,
        netdevs=netdevs,
        driver=host.link_name(f"{d}/driver"),
        vendor_id=vendor,
        device_id=device,
        class_code=(host.read_opt(f"{d}/class") or "0x000000").lower().removeprefix("0x"),
        name=None,
        total_vfs=total_vfs,
        cap_total_vfs=cap_total if isinstance(cap_total, int) else None,
        initial_vfs=initial if isinstance(initial, int) else None,
        num_vfs=num_vfs,
        vf_offset=offset,
        vf_stride=stride,
        vf_device_id=_hex4(vf_dev) if vf_dev else None,
        autoprobe=_bool(host.read_opt(f"{d}/sriov_drivers_autoprobe")),
        numa_node=host.read_int(f"{d}/numa_node", 10),
        iommu_group=_group(host, d),
        link=_link(cs),
        ari=isinstance(ari, Mapping),
        vfs=tuple(vfs),
        notes=tuple(notes),
        problems=tuple(problems),
        config_bytes_read=cs.get("bytes_read")
        if cs and isinstance(cs.get("bytes_read"), int)
        else None,  # type: ignore[arg-type]
    )


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
