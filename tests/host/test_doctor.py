"""`vfctl doctor [PF] --json` on simulated hosts, each check driven into its bad state the way a
real host gets there (IOMMU off, no-IOMMU vfio, a PF without driver, a port without ACS, ...)."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from typing import Any

import pytest
from simcli import SimHost

from vfctl import sim
from vfctl.host.open import open_host
from vfctl.pci.regs import PCI_EXT_CAP_ID_ACS
from vfctl.sim.cfgbuild import find_ext_cap

MIN_PF, MIN_ADDR = "enp1s0", "0000:01:00.0"  # minimal preset: igb behind root port 00:01.0
ROOT_PORT = "0000:00:01.0"


def doctor(h: SimHost, *args: str) -> tuple[int, list[dict[str, Any]]]:
    log = h.writes()
    r = h("doctor", *args, "--json")
    assert h.writes() == log  # read-only, always
    doc = r.json()
    assert set(doc) == {"ok", "checks"}
    assert doc["ok"] is (r.code == 0)
    assert r.code in (0, 5), r.err
    assert (r.code == 5) == any(c["status"] == "fail" for c in doc["checks"])
    for c in doc["checks"]:
        assert set(c) == {"check", "status", "detail", "remedy", "target"}
        assert c["status"] in ("ok", "warn", "fail", "info")
        if c["status"] == "fail":
            assert c["remedy"], c  # every failure says what to do
    return r.code, doc["checks"]


def one(checks: list[dict[str, Any]], name: str, target: str | None = None) -> dict[str, Any]:
    found = [c for c in checks if c["check"] == name and (target is None or target in c["target"])]
    assert len(found) == 1, (name, target, found)
    return found[0]


def names(checks: list[dict[str, Any]]) -> set[str]:
    return {c["check"] for c in checks}


@pytest.fixture
def minimal(make_host: Callable[[str], SimHost]) -> SimHost:
    return make_host("minimal")


# ---------------------------------------------------------------- IOMMU


def test_iommu_ok_counts_groups(minimal: SimHost) -> None:
    code, checks = doctor(minimal)
    n = len(list((minimal.root / "sys/kernel/iommu_groups").iterdir()))
    assert n > 0
    c = one(checks, "iommu")
    assert c["status"] == "ok" and f"{n} IOMMU groups" in c["detail"]
    assert code == 0


def _iommu_off(h: SimHost, cpu_vendor: str | None) -> None:
    def off(st: dict[str, Any]) -> None:
        st["iommu"] = False
        st["cmdline"] = "root=/dev/sda1 ro quiet"  # booted without intel_iommu=on
        for d in st["devices"].values():
            d["iommu_group"] = None

    h.edit_state(off)  # the simulator agrees, so nothing re-creates the groups
    groups = h.root / "sys/kernel/iommu_groups"
    for g in list(groups.iterdir()):
        shutil.rmtree(g)
    if cpu_vendor:
        (h.root / "proc/cpuinfo").write_text(f"processor\t: 0\nvendor_id\t: {cpu_vendor}\n")


@pytest.mark.parametrize(
    ("vendor", "arg"),
    [("GenuineIntel", "intel_iommu=on"), ("AuthenticAMD", "amd_iommu=on"), (None, "intel_iommu")],
)
def test_iommu_off_fails_with_the_kernel_argument(
    minimal: SimHost, vendor: str | None, arg: str
) -> None:
    _iommu_off(minimal, vendor)
    assert list((minimal.root / "sys/kernel/iommu_groups").iterdir()) == []
    code, checks = doctor(minimal)
    assert code == 5
    c = one(checks, "iommu")
    assert c["status"] == "fail" and "no IOMMU groups" in c["detail"]
    assert f"add `{arg}" in c["remedy"] and "reboot" in c["remedy"]
    assert "root=/dev/sda1 ro quiet" in c["remedy"]  # the command line it runs with now
    other = "amd_iommu" if arg.startswith("intel") else "intel_iommu"
    assert other not in c["remedy"]
    r = minimal("doctor")  # the table form exits the same way
    assert r.code == 5 and "iommu" in r.out


# ---------------------------------------------------------------- vfio


def test_vfio_noiommu_mode_warns(minimal: SimHost) -> None:
    _, checks = doctor(minimal)
    assert "vfio-noiommu" not in names(checks)
    sim.modprobe(minimal.root, "vfio-pci")
    param = minimal.root / "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
    param.parent.mkdir(parents=True, exist_ok=True)
    param.write_text("N\n")
    _, checks = doctor(minimal)
    assert "vfio-noiommu" not in names(checks)
    assert one(checks, "vfio-pci")["status"] == "ok"
    param.write_text("Y\n")
    code, checks = doctor(minimal)
    c = one(checks, "vfio-noiommu")
    assert c["status"] == "warn" and "no DMA isolation" in c["detail"]
    assert "enable_unsafe_noiommu_mode" in c["remedy"]
    assert code == 0  # a warning, not a failure


def test_vfio_pci_missing_warns(minimal: SimHost) -> None:
    _, checks = doctor(minimal)
    c = one(checks, "vfio-pci")
    assert c["status"] == "warn" and "modprobe vfio-pci" in c["remedy"]


# ---------------------------------------------------------------- PF checks


@pytest.mark.parametrize(
    ("pf", "driver", "driver_max", "cap"),
    [("enp2s0f0", "igb", 7, 8), ("enp1s0f1", "ixgbe", 63, 64)],
)
def test_firmware_cap_info(
    make_host: Callable[[str], SimHost], pf: str, driver: str, driver_max: int, cap: int
) -> None:
    h = make_host("default")
    shown = h("show", pf, "--json").json()
    assert (shown["total_vfs"], shown["cap_total_vfs"]) == (driver_max, cap)
    code, checks = doctor(h, pf)
    assert code == 0
    assert {c["target"] for c in checks if c["target"]} == {f"{pf} {shown['address']}"}
    c = one(checks, "firmware-cap")
    assert c["status"] == "info"
    assert f"allows {cap} VFs" in c["detail"] and f"firmware {driver_max}" in c["detail"]
    d = one(checks, "pf-driver")
    assert d["status"] == "ok" and f"driver {driver}, up to {driver_max} VFs" == d["detail"]


def test_doctor_without_pf_checks_every_pf(make_host: Callable[[str], SimHost]) -> None:
    h = make_host("default")
    pfs = {f"{p['netdev']} {p['address']}" for p in h("list", "--json").json()["pfs"]}
    code, checks = doctor(h)
    assert code == 0
    assert {c["target"] for c in checks if c["check"] == "pf-driver"} == pfs


def test_vf_sharing_its_pf_group_warns(minimal: SimHost) -> None:
    assert minimal("enable", MIN_PF, "2").code == 0
    _, checks = doctor(minimal, MIN_PF)
    assert "vf-group" not in names(checks)  # each VF alone in its group
    vfs = minimal("show", MIN_PF, "--json").json()["vfs"]
    pf_group = minimal("show", MIN_PF, "--json").json()["iommu_group"]

    def share(st: dict[str, Any]) -> None:  # as without ACS: the VF lands in the PF's group
        st["devices"][vfs[1]["address"]]["iommu_group"] = pf_group

    minimal.edit_state(share)
    code, checks = doctor(minimal, MIN_PF)
    c = one(checks, "vf-group")
    assert c["status"] == "warn" and code == 0
    assert f"VF 1 ({vfs[1]['address']}) shares IOMMU group {pf_group}" in c["detail"]
    assert MIN_ADDR in c["detail"] and vfs[0]["address"] not in c["detail"]


def test_pf_without_driver_fails(minimal: SimHost) -> None:
    open_host(minimal.root).write("sys/bus/pci/drivers/igb/unbind", MIN_ADDR)
    code, checks = doctor(minimal, MIN_ADDR)
    assert code == 5
    c = one(checks, "pf-driver")
    assert c["status"] == "fail" and c["target"] == f"- {MIN_ADDR}"
    assert "no driver bound" in c["detail"] and "modprobe" in c["remedy"]
    assert "firmware-cap" not in names(checks)  # nothing to compare without the driver's limit


def _drop_acs(h: SimHost, port: str) -> None:
    """Unlink the ACS extended capability from a port's config space (header next pointer)."""
    cfg = h.root / h.dev(port, "config")
    data = bytearray(cfg.read_bytes())
    acs = find_ext_cap(bytes(data), PCI_EXT_CAP_ID_ACS)
    assert acs is not None
    pos = 0x100
    while True:
        (hdr,) = struct.unpack_from("<I", data, pos)
        nxt = hdr >> 20
        if nxt == acs:
            (acs_hdr,) = struct.unpack_from("<I", data, acs)
            struct.pack_into("<I", data, pos, (hdr & 0xFFFFF) | (acs_hdr >> 20) << 20)
            break
        assert nxt, "ACS not in the chain"
        pos = nxt
    cfg.write_bytes(bytes(data))
    assert find_ext_cap(bytes(data), PCI_EXT_CAP_ID_ACS) is None


def test_acs_on_upstream_ports(minimal: SimHost) -> None:
    _, checks = doctor(minimal, MIN_PF)
    assert one(checks, "acs")["status"] == "ok"
    _drop_acs(minimal, ROOT_PORT)
    code, checks = doctor(minimal, MIN_PF)
    c = one(checks, "acs")
    assert c["status"] == "warn" and code == 0
    assert f"no ACS on upstream port(s) {ROOT_PORT}" in c["detail"]
    assert "ACS-capable" in c["remedy"]
    assert one(checks, "iommu")["status"] == "ok"


def test_unknown_pf_is_not_found(minimal: SimHost) -> None:
    r = minimal("doctor", "eth7", "--json")
    assert r.code == 3 and r.json()["error"]["kind"] == "not-found"
