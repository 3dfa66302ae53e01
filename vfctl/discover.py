"""Host → model: PFs, VFs, drivers, netdevs, IOMMU groups, read through one Host root.

Config spaces of all SR-IOV PFs are parsed in one batch call (the C extension when built);
everything else comes from sysfs attributes the kernel already decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from vfctl.errors import NotFoundError, UsageError
from vfctl.host.sysfs import CLASS_NET, IOMMU_GROUPS, PCI_DEVICES, Host, check_name
from vfctl.model import PF, VF, Attachment, Device, HostModel, VFSettings
from vfctl.pci import address as pciaddr

Attachments = Mapping[str, Sequence[Attachment]]
VfInfo = Mapping[str, Sequence[VFSettings]]  # PF netdev → settings by VF index


def _hex4(v: str | None) -> str:
    if not v:
        return "????"
    return v.lower().removeprefix("0x").rjust(4, "0")[-4:]


def _group(host: Host, dev: str) -> int | None:
    name = host.link_name(f"{dev}/iommu_group")
    return int(name) if name and name.isdigit() else None


def _netdevs(host: Host, dev: str) -> tuple[str, ...]:
    return tuple(host.listdir(f"{dev}/net"))


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
) -> HostModel:
    """Read the host into a HostModel; ``attachments`` come from backends, ``vf_info`` from netlink."""
    if not host.isdir(PCI_DEVICES):
        raise UsageError(
            f"{host.path(PCI_DEVICES)} does not exist: {host.root} is not a sysfs root"
        )
    attachments = attachments or {}
    addrs = host.listdir(PCI_DEVICES)
    pf_addrs = [a for a in addrs if host.exists(f"{PCI_DEVICES}/{a}/sriov_totalvfs")]
    configs = parse_configs(host, pf_addrs)
    pfs = [_pf(host, a, configs.get(a), attachments, vf_info or {}) for a in pf_addrs]
    devices = tuple(_device(host, a) for a in addrs) if with_devices else ()
    iommu = bool(host.listdir(IOMMU_GROUPS))
    return HostModel(pfs=tuple(pfs), devices=devices, iommu_enabled=iommu)


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
    host: Host, a: str, cs: dict[str, object] | None, attachments: Attachments, vf_info: VfInfo
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
    settings = list(vf_info.get(netdev or "", ())) if netdev else []
    vfs = []
    notes: list[str] = []
    for idx, vaddr in _virtfns(host, d):
        if offset is not None and stride is not None:
            expect = pciaddr.vf_address(a, offset, stride, idx)
            if expect != vaddr:
                # virtfnN is the kernel's truth; a mismatch is a quirk worth showing
                notes.append(f"virtfn{idx} is {vaddr}, offset/stride say {expect}")
        vd = f"{PCI_DEVICES}/{vaddr}"
        vfs.append(
            VF(
                index=idx,
                address=vaddr,
                driver=host.link_name(f"{vd}/driver"),
                driver_override=_override(host.read_opt(f"{vd}/driver_override")),
                netdev=(_netdevs(host, vd) or (None,))[0],
                iommu_group=_group(host, vd),
                vendor_id=_hex4(host.read_opt(f"{vd}/vendor")),
                device_id=_hex4(host.read_opt(f"{vd}/device")),
                settings=settings[idx] if idx < len(settings) else VFSettings(),
                attached_to=tuple(attachments.get(vaddr, ())),
            )
        )
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
        total_vfs=host.read_int(f"{d}/sriov_totalvfs", 10) or 0,
        cap_total_vfs=cap_total if isinstance(cap_total, int) else None,
        initial_vfs=initial if isinstance(initial, int) else None,
        num_vfs=host.read_int(f"{d}/sriov_numvfs", 10) or 0,
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
