"""The host as immutable data: what discovery returns and planning reads."""

from __future__ import annotations

from vfctl.record import dataclass, field, replace

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Attachment:
    """A VF held by a VM, as a backend reports it."""

    backend: str  # "libvirt" | "proxmox"
    vm: str  # domain name / "vm101"
    vm_id: str  # libvirt UUID / Proxmox vmid
    element: str  # "hostdev" | "interface" | "hostpci3" | …
    live: bool = False
    config: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "vm": self.vm,
            "vm_id": self.vm_id,
            "element": self.element,
            "live": self.live,
            "config": self.config,
        }


@dataclass(frozen=True)
class HeldBy:
    """The process that really holds a VF: the opener of its /dev/vfio/N, or PVE's reservation.

    Configs say what a VM *may* use; this is what a running (or starting) VM *does* use.
    """

    vm: str | None  # "vm101" / libvirt domain name; None: a process that is no known VM
    pid: int | None  # None: a PVE reservation in its start window (no QEMU pid yet)
    backend: str | None = None  # "proxmox" | "libvirt" (from the pid file's location)

    def to_json(self) -> dict[str, Any]:
        return {"vm": self.vm, "pid": self.pid, "backend": self.backend}

    def describe(self) -> str:
        who = f"VM {self.vm}" if self.vm else "a process that is no known VM"
        return f"{who} (pid {self.pid})" if self.pid is not None else f"{who} (starting)"


@dataclass(frozen=True)
class PoolRef:
    """A VF's membership in a pool (a PVE mapping with several entries for this node)."""

    mapping: str
    vms: tuple[str, ...] = ()  # VMs whose config references the mapping
    managed: bool = False  # vfctl created the mapping (only then may --force move the VF)

    def describe(self) -> str:
        users = ", ".join(self.vms) if self.vms else "no VM yet"
        return f"PCI mapping pool {self.mapping} (used by {users})"


@dataclass(frozen=True)
class VFSettings:
    """A VF's netlink settings as the PF driver reports them (None: not reported)."""

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    vlan_proto: str | None = None  # "802.1Q" | "802.1ad"
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None  # "auto" | "enable" | "disable"
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    query_rss: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__match_args__}  # the fields, in order


@dataclass(frozen=True)
class VF:
    index: int
    address: str
    driver: str | None
    driver_override: str | None
    netdev: str | None
    iommu_group: int | None
    vendor_id: str
    device_id: str
    settings: VFSettings = field(default_factory=VFSettings)
    attached_to: tuple[Attachment, ...] = ()
    held_by: HeldBy | None = None
    pool: PoolRef | None = None

    @classmethod
    def plain(
        cls,
        index: int,
        address: str,
        driver: str | None,
        driver_override: str | None,
        netdev: str | None,
        iommu_group: int | None,
        vendor_id: str,
        device_id: str,
        settings: VFSettings,
    ) -> VF:
        """``VF(...)`` with nothing attached, held or pooled, made as discovery makes one per
        VF: one dict instead of the frozen ``__init__``'s twelve ``object.__setattr__``
        calls (a third of the cost), and without the three fields whose class defaults say
        "unused" already (``attached_to``, ``held_by``, ``pool``): nine keys fit CPython's
        16-slot table (twelve take 32), half the memory and page faults for 16,384 VFs.
        Equal objects, same hash and repr (tests/core/test_model.py)."""
        v = object.__new__(cls)
        object.__setattr__(
            v,
            "__dict__",
            {
                "index": index,
                "address": address,
                "driver": driver,
                "driver_override": driver_override,
                "netdev": netdev,
                "iommu_group": iommu_group,
                "vendor_id": vendor_id,
                "device_id": device_id,
                "settings": settings,
            },
        )
        return v

    PLAIN = (  # VF.plain's keys, in order (jsonrows.objects makes many VFs with them)
        "index", "address", "driver", "driver_override", "netdev", "iommu_group",
        "vendor_id", "device_id", "settings",
    )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "address": self.address,
            "driver": self.driver,
            "driver_override": self.driver_override,
            "netdev": self.netdev,
            "iommu_group": self.iommu_group,
            "vendor_id": self.vendor_id,
            "device_id": self.device_id,
        }
        d.update(self.settings.to_json())
        d["attached_to"] = [a.to_json() for a in self.attached_to]
        d["held_by"] = self.held_by.to_json() if self.held_by else None
        d["pool"] = self.pool.mapping if self.pool else None
        d["pool_vms"] = list(self.pool.vms) if self.pool else []
        return d


@dataclass(frozen=True)
class PF:
    address: str
    netdev: str | None
    netdevs: tuple[str, ...]
    driver: str | None
    vendor_id: str
    device_id: str
    class_code: str
    name: str | None
    total_vfs: int  # the kernel's sriov_totalvfs (driver may lower it)
    cap_total_vfs: int | None  # TotalVFs in the SR-IOV capability
    initial_vfs: int | None
    num_vfs: int
    vf_offset: int | None
    vf_stride: int | None
    vf_device_id: str | None
    autoprobe: bool | None
    numa_node: int | None
    iommu_group: int | None
    link: str | None  # "8GT/s x4"
    ari: bool
    vfs: tuple[VF, ...] = ()
    notes: tuple[str, ...] = ()  # discovery oddities, e.g. virtfnN vs offset/stride
    problems: tuple[str, ...] = ()  # garbage the kernel reported (sriov_numvfs "-5"): no changes

    def vf(self, index: int) -> VF | None:
        for v in self.vfs:
            if v.index == index:
                return v
        return None

    def to_json(self) -> dict[str, Any]:
        d = self.head_json()
        d["vfs"] = [v.to_json() for v in self.vfs]  # in its place: the key is there already
        return d

    def head_json(self) -> dict[str, Any]:
        """``to_json`` with ``"vfs": []``: vfctl.jsontext writes the VFs' text itself."""
        return {
            "address": self.address,
            "netdev": self.netdev,
            "netdevs": list(self.netdevs),
            "driver": self.driver,
            "vendor_id": self.vendor_id,
            "device_id": self.device_id,
            "class": self.class_code,
            "name": self.name,
            "total_vfs": self.total_vfs,
            "cap_total_vfs": self.cap_total_vfs,
            "initial_vfs": self.initial_vfs,
            "num_vfs": self.num_vfs,
            "vf_offset": self.vf_offset,
            "vf_stride": self.vf_stride,
            "vf_device_id": self.vf_device_id,
            "autoprobe": self.autoprobe,
            "numa_node": self.numa_node,
            "iommu_group": self.iommu_group,
            "link": self.link,
            "ari": self.ari,
            "vfs": [],
            "notes": list(self.notes),
            "problems": list(self.problems),
        }


class VfRows:
    """A PF's VFs as discovery read them: one value per ``VF.PLAIN`` key, a list (one item per
    VF) or one value every VF shares. Made into VF objects only when ``PF.vfs`` is read.

    Why: 16,384 VF objects cost ~20% of ``vfctl list --all --json``'s instructions (made,
    read back by the JSON rows, freed at exit), while that document can be written from the
    columns themselves (vfctl/jsontext.py). Whatever reads ``PF.vfs`` gets the same tuple of
    equal VFs as if they had been made at discovery (tests/core/test_vfrows.py)."""

    __slots__ = ("columns", "n")

    def __init__(self, columns: tuple[Any, ...], n: int) -> None:
        self.columns, self.n = columns, n  # n: the rows, the length of every list column

    def column(self, key: str) -> list[Any]:
        """One fact of every VF, in order, without making VFs."""
        v = self.columns[VF.PLAIN.index(key)]
        return v if type(v) is list else [v] * self.n

    def make(self, stop: int | None = None) -> tuple[VF, ...]:
        """The VFs (the first ``stop`` of them), as ``VF.plain`` makes each."""
        from vfctl import jsonrows

        cols = (
            self.columns
            if stop is None
            else tuple(v[:stop] if type(v) is list else v for v in self.columns)
        )
        return tuple(jsonrows.objects(VF, VF.PLAIN, cols))


class _LazyVfs:
    """``PF.vfs``: a PF made by ``pf_of_rows`` has its VFs made on first read (then kept)."""

    def __get__(self, obj: PF | None, owner: type) -> tuple[VF, ...]:
        if obj is None:
            return ()  # the field's default, as the class attribute was
        d = obj.__dict__
        rows = d.pop("_vf_rows", None)
        vfs: tuple[VF, ...] = rows.make() if rows is not None else ()
        d["vfs"] = vfs
        return vfs


PF.vfs = _LazyVfs()  # type: ignore[assignment]  # reads as the tuple; the instance's wins
PF.__record_lazy__ = {"vfs": "_vf_rows"}  # type: ignore[attr-defined]  # record.replace keeps it


def pf_of_rows(rows: VfRows, **fields: Any) -> PF:
    """A PF whose VFs are made from ``rows`` when first read (``fields``: all but ``vfs``)."""
    pf = PF(vfs=(), **fields)  # every field by name: record's quick __init__
    d = pf.__dict__
    del d["vfs"]
    d["_vf_rows"] = rows
    return pf


def pf_with_rows(pf: PF, rows: VfRows) -> PF:
    """``pf`` (its VFs not made yet) with ``rows`` as its VFs' columns instead."""
    new = replace(pf)  # keeps the VFs unmade
    new.__dict__["_vf_rows"] = rows
    return new


def settings_at(settings: list[VFSettings], index: int, own: VFSettings) -> VFSettings:
    """VF ``index``'s settings from the PF driver's list, its ``own`` past the list's end."""
    return settings[index] if index < len(settings) else own


def rows_with_settings(rows: VfRows, settings: list[VFSettings]) -> VfRows:
    """``rows`` with each VF's settings from ``settings`` (:func:`settings_at`)."""
    at = VF.PLAIN.index("settings")
    own = rows.column("settings")
    col = [settings_at(settings, i, o) for i, o in zip(rows.column("index"), own, strict=True)]
    return VfRows((*rows.columns[:at], col, *rows.columns[at + 1 :]), rows.n)


def vf_rows(pf: PF) -> VfRows | None:
    """The PF's VFs as columns while no one has read ``pf.vfs`` (else None)."""
    rows: VfRows | None = pf.__dict__.get("_vf_rows")
    return rows


@dataclass(frozen=True)
class Device:
    """Any PCI function (used for IOMMU-group checks and doctor)."""

    address: str
    driver: str | None
    class_code: str
    netdevs: tuple[str, ...]
    iommu_group: int | None
    is_bridge: bool
    physfn: str | None  # the PF address when this is a VF


@dataclass(frozen=True)
class NetLink:
    """One network interface as the in-use rules see it (one entry of the link dump)."""

    ifname: str
    kind: str | None  # IFLA_INFO_KIND (bond, bridge, team, openvswitch, vlan …); None: a NIC
    up: bool  # administratively up (IFF_UP)
    addresses: tuple[str, ...] = ()  # "198.51.100.7/24", up or down
    master: str | None = None  # the bond/bridge/team/OVS it is a port of
    link: str | None = None  # the lower device of a vlan/macvlan/ipvlan (IFLA_LINK)
    default_route: bool = False  # a main-table default route leaves through it


@dataclass(frozen=True)
class VfioHolder:
    """A process with ``/dev/vfio/<group>`` open."""

    group: int
    pid: int
    comm: str


@dataclass(frozen=True)
class InUse:
    """Every in-use fact discovery read (``vfctl.host.inuse``), ruled on by ``vfctl.inuse``.

    ``collected`` False: nobody asked (read-only commands do not read them).
    """

    links: tuple[NetLink, ...] = ()
    vfio: tuple[VfioHolder, ...] = ()
    collected: bool = False

    def link(self, ifname: str) -> NetLink | None:
        for li in self.links:
            if li.ifname == ifname:
                return li
        return None

    def holders(self, group: int | None) -> list[VfioHolder]:
        return [h for h in self.vfio if h.group == group] if group is not None else []

    def uppers(self, ifname: str) -> list[NetLink]:
        """Devices stacked on ``ifname``: its master and the vlans/macvlans built on it."""
        me = self.link(ifname)
        out = [li for li in self.links if li.link == ifname and li.ifname != ifname]
        if me is not None and me.master:
            m = self.link(me.master)
            out.insert(0, m if m is not None else NetLink(me.master, None, False))
        return out

    def chain(self, ifname: str) -> list[str]:
        """``ifname`` and everything above it (port → bond → bridge, vlan on top …)."""
        out, todo = [ifname], [ifname]
        while todo:
            for up in self.uppers(todo.pop()):
                if up.ifname not in out:
                    out.append(up.ifname)
                    todo.append(up.ifname)
        return out


@dataclass(frozen=True)
class HostModel:
    pfs: tuple[PF, ...]
    devices: tuple[Device, ...] = ()
    inuse: InUse = field(default_factory=lambda: InUse())  # not in the JSON
    host_id: str = "localhost"  # machine-id, else hostname: what derived MACs are made of

    def to_json(self) -> dict[str, Any]:
        return {"pfs": [p.to_json() for p in self.pfs]}

    def device(self, address: str) -> Device | None:
        for d in self.devices:
            if d.address == address:
                return d
        return None

    def group_members(self, group: int) -> list[Device]:
        return [d for d in self.devices if d.iommu_group == group]
