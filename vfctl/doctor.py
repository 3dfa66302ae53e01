"""`vfctl doctor`: is this host ready to pass VFs to VMs? A checklist with one remedy per failure.

Checks read the host only (sysfs, /proc, config spaces); they never change anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfctl.discover import parse_configs
from vfctl.host.sysfs import IOMMU_GROUPS, PCI_DEVICES, Host
from vfctl.model import PF, HostModel

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    remedy: str | None = None
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "detail": self.detail,
            "remedy": self.remedy,
            "target": self.target,
        }


def _cpu_vendor(host: Host) -> str:
    info = host.read_opt("proc/cpuinfo") or ""
    if "AuthenticAMD" in info:
        return "amd"
    return "intel" if "GenuineIntel" in info else "unknown"


def _param(host: Host, module: str, param: str) -> str | None:
    return host.read_opt(f"sys/module/{module}/parameters/{param}")


def host_checks(host: Host) -> list[Check]:
    out: list[Check] = []
    cmdline = host.read_opt("proc/cmdline") or ""
    vendor = _cpu_vendor(host)
    groups = host.listdir(IOMMU_GROUPS)
    if groups:
        out.append(Check("iommu", OK, f"IOMMU enabled: {len(groups)} IOMMU groups"))
    else:
        arg = "amd_iommu=on iommu=pt" if vendor == "amd" else "intel_iommu=on iommu=pt"
        key = arg.split()[0]
        remedy = (
            f"the kernel command line already has `{key}`: enable VT-d/AMD-Vi in the firmware "
            "setup, then reboot"
            if key in cmdline.split()
            else f"enable VT-d/AMD-Vi in the firmware and add `{arg}` to the kernel "
            f"command line (now: {cmdline or 'unknown'}), then reboot"
        )
        out.append(Check("iommu", FAIL, "no IOMMU groups: the IOMMU is off or absent", remedy))
    out.append(_irq_remap(host))
    vfio = host.exists("sys/module/vfio_pci") or host.exists("sys/bus/pci/drivers/vfio-pci")
    if vfio:
        out.append(Check("vfio-pci", OK, "vfio-pci module loaded"))
    elif _module_file(host, "vfio-pci"):
        out.append(Check("vfio-pci", OK, "vfio-pci module available (loaded on first bind)"))
    else:
        out.append(
            Check(
                "vfio-pci",
                WARN,
                "vfio-pci module not loaded and not found on disk",
                "install the kernel's modules package; `modprobe vfio-pci`",
            )
        )
    noiommu = _param(host, "vfio", "enable_unsafe_noiommu_mode")
    if noiommu in ("Y", "1"):
        out.append(
            Check(
                "vfio-noiommu",
                WARN,
                "VFIO no-IOMMU mode is on: no DMA isolation",
                "unset vfio.enable_unsafe_noiommu_mode; use a real IOMMU",
            )
        )
    return out


def _irq_remap(host: Host) -> Check:
    unsafe = _param(host, "vfio_iommu_type1", "allow_unsafe_interrupts")
    if unsafe in ("Y", "1"):
        return Check(
            "interrupt-remapping",
            WARN,
            "vfio allows unsafe interrupts (no remapping)",
            "enable interrupt remapping (x2APIC/IR in firmware) and drop "
            "vfio_iommu_type1.allow_unsafe_interrupts",
        )
    raw = [
        host.read_opt(f"sys/class/iommu/{d}/intel-iommu/ecap")
        for d in host.listdir("sys/class/iommu")
    ]
    ecaps = [e for e in raw if e]
    if ecaps:
        ir = all(int(e, 16) & (1 << 3) for e in ecaps)
        if ir:
            return Check("interrupt-remapping", OK, "every DMAR unit supports interrupt remapping")
        return Check(
            "interrupt-remapping",
            WARN,
            "a DMAR unit lacks interrupt remapping",
            "enable interrupt remapping in the firmware (intremap=on)",
        )
    if "intremap=off" in (host.read_opt("proc/cmdline") or ""):
        return Check(
            "interrupt-remapping",
            FAIL,
            "interrupt remapping disabled on the command line",
            "remove intremap=off from the kernel command line",
        )
    return Check("interrupt-remapping", INFO, "interrupt remapping state not visible in sysfs")


def _module_file(host: Host, name: str) -> bool:
    rel = host.read_opt("proc/sys/kernel/osrelease")
    if not rel:
        return False
    want = re.compile(re.escape(name).replace("\\-", "[-_]") + r"\.ko(\.xz|\.zst|\.gz)?$")
    dep = (
        host.read_opt(f"lib/modules/{rel}/modules.dep")
        or host.read_opt(f"usr/lib/modules/{rel}/modules.dep")
        or ""
    )
    return any(want.search(line.split(":", 1)[0]) for line in dep.splitlines())


def _ancestors(host: Host, address: str) -> list[str]:
    """Upstream PCI functions (bridges/ports) from the device's real sysfs path."""
    target = host.link_rel(f"{PCI_DEVICES}/{address}") or ""
    parts = target.split("/")
    return [p for p in parts[:-1] if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", p)]


def pf_checks(host: Host, model: HostModel, pfs: Sequence[PF]) -> list[Check]:
    out: list[Check] = []
    upstream = {a for pf in pfs for a in _ancestors(host, pf.address)}
    configs = parse_configs(host, sorted(upstream | {p.address for p in pfs}))
    for pf in pfs:
        t = f"{pf.netdev or '-'} {pf.address}"
        missing = [
            f
            for f in (
                "sriov_totalvfs",
                "sriov_numvfs",
                "sriov_offset",
                "sriov_stride",
                "sriov_vf_device",
                "sriov_drivers_autoprobe",
            )
            if not host.exists(f"{PCI_DEVICES}/{pf.address}/{f}")
        ]
        if missing:
            out.append(
                Check(
                    "sriov-files",
                    WARN,
                    f"missing {', '.join(missing)}",
                    "an old kernel or a driver without SR-IOV support",
                    t,
                )
            )
        if pf.driver is None:
            out.append(
                Check(
                    "pf-driver",
                    FAIL,
                    "no driver bound: VFs cannot be created",
                    "bind the NIC's driver (e.g. `modprobe ixgbe`)",
                    t,
                )
            )
        elif pf.total_vfs <= 0:
            out.append(
                Check(
                    "pf-driver",
                    FAIL,
                    f"driver {pf.driver} reports sriov_totalvfs 0",
                    "enable SR-IOV in the NIC firmware/BIOS or the driver's max_vfs option",
                    t,
                )
            )
        else:
            out.append(
                Check("pf-driver", OK, f"driver {pf.driver}, up to {pf.total_vfs} VFs", None, t)
            )
        if pf.cap_total_vfs is not None and pf.cap_total_vfs > pf.total_vfs > 0:
            out.append(
                Check(
                    "firmware-cap",
                    INFO,
                    f"the capability allows {pf.cap_total_vfs} VFs, the driver/firmware "
                    f"{pf.total_vfs}",
                    "raise the limit in the NIC firmware if you need more",
                    t,
                )
            )
        cs = configs.get(pf.address)
        if cs is not None:
            stride = pf.vf_stride or 1
            need_ari = (pf.vf_offset or 0) + stride * max(pf.total_vfs - 1, 0) > 7
            if cs.get("ari"):
                out.append(Check("ari", OK, "ARI capability present", None, t))
            elif need_ari:
                out.append(
                    Check(
                        "ari",
                        WARN,
                        "no ARI: VFs beyond function 7 need ARI forwarding",
                        "use a slot whose port supports ARI",
                        t,
                    )
                )
        no_acs = [
            a
            for a in _ancestors(host, pf.address)
            if a in configs and _is_downstream(configs[a]) and not configs[a].get("acs")
        ]
        if no_acs:
            out.append(
                Check(
                    "acs",
                    WARN,
                    f"no ACS on upstream port(s) {', '.join(no_acs)}: VFs may "
                    "share an IOMMU group with other devices",
                    "use a slot behind an ACS-capable port",
                    t,
                )
            )
        elif _ancestors(host, pf.address):
            out.append(Check("acs", OK, "upstream ports have ACS (or none to check)", None, t))
        out.append(
            Check(
                "autoprobe",
                INFO,
                f"sriov_drivers_autoprobe={'1' if pf.autoprobe else '0'}: new VFs "
                + ("bind to the VF driver" if pf.autoprobe else "stay without a driver"),
                None
                if not pf.autoprobe
                else "for passthrough-only VFs, `vfctl enable PF N --no-autoprobe`",
                t,
            )
        )
        for vf in pf.vfs:
            if vf.iommu_group is None:
                continue
            others = [
                d
                for d in model.group_members(vf.iommu_group)
                if d.address != vf.address and d.physfn is None and not d.is_bridge
            ]
            if others:
                out.append(
                    Check(
                        "vf-group",
                        WARN,
                        f"VF {vf.index} ({vf.address}) shares IOMMU group {vf.iommu_group} "
                        f"with {', '.join(d.address for d in others)}",
                        "passing it through takes the whole group: check ACS",
                        t,
                    )
                )
    return out


def _is_downstream(cs: Mapping[str, Any]) -> bool:
    pcie = cs.get("pcie")
    return isinstance(pcie, Mapping) and pcie.get("device_type") in ("root_port", "downstream_port")


def run(host: Host, model: HostModel, pfs: Sequence[PF]) -> list[Check]:
    return host_checks(host) + pf_checks(host, model, pfs)
