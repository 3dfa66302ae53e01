"""`vfctl list` on the real kernel agrees with sysfs and with `lspci -vvv` in the same guest;
the C config-space parser agrees with the pure-Python one on every PCI device there.

VFs exist while we look (3 on the first igb PF, 2 driverless ones on the NVMe PF), so VF
addresses, drivers, netdevs and IOMMU groups are compared too. Nothing is assumed about names:
PFs are whatever has `sriov_totalvfs`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .runner import GUEST_SHARE, Lab

# One Python process: sysfs as read by plain code, and both parsers on every config file.
PROBE = r"""
import glob, json, os
from vfctl.pci import configspace as cs

def rd(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return None

def link(p):
    return os.path.basename(os.readlink(p)) if os.path.islink(p) else None

devs = {}
for d in sorted(glob.glob("/sys/bus/pci/devices/*")):
    a = os.path.basename(d)
    devs[a] = {
        "vendor": rd(f"{d}/vendor"), "device": rd(f"{d}/device"), "driver": link(f"{d}/driver"),
        "iommu_group": link(f"{d}/iommu_group"),
        "net": sorted(os.listdir(f"{d}/net")) if os.path.isdir(f"{d}/net") else [],
        "virtfn": {int(n[6:]): link(f"{d}/{n}") for n in os.listdir(d) if n.startswith("virtfn")},
        **{k: rd(f"{d}/sriov_{k}") for k in ("totalvfs", "numvfs", "offset", "stride",
                                            "vf_device", "drivers_autoprobe")},
    }
paths = [f"/sys/bus/pci/devices/{a}/config" for a in devs]
# discovery's own VF addresses: derived from offset/stride, or read from the links
from vfctl import discover, discover_vfs
from vfctl.host.open import open_host
h = open_host("/")
f = discover_vfs.pfs_and_vfs(h, h.listdir("sys/bus/pci/devices"),
                             lambda pfs: discover.parse_configs(h, pfs))
derived = {a: [f.vfs[a].derived, f.vfs[a].address] for a in f.pfs}
print(json.dumps({"sysfs": devs, "have_c": cs.HAVE_C, "c": cs.parse_files_c(paths),
                  "py": cs.parse_files_python(paths), "derived": derived}))
"""
NO_C = r"""
import glob, json
from vfctl.pci import configspace as cs
print(json.dumps({"have_c": cs.HAVE_C,
                  "docs": cs.parse_files(sorted(glob.glob("/sys/bus/pci/devices/*/config")))}))
"""

SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/d; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1)
echo 3 > $PF/sriov_numvfs
for d in /sys/bus/pci/drivers/nvme/0000:*; do
    [ -e $d/sriov_totalvfs ] && echo 0 > $d/sriov_drivers_autoprobe && echo 2 > $d/sriov_numvfs
done
vfctl list --json > $O/list.json
lspci -D -n -vvv > $O/lspci.txt
python -c "$PROBE" > $O/probe.json
VFCTL_NO_C=1 python -c "$NO_C" > $O/noc.json
"""


@pytest.fixture(scope="module")
def seen(lab: Lab) -> dict[str, Any]:
    lab.run(
        SCRIPT.replace("__SHARE__", GUEST_SHARE),
        timeout=300,
        check=True,
        retry_on_hang=True,
        env={"PROBE": PROBE, "NO_C": NO_C},
    )
    d: Path = lab.share / "d"
    return {
        "list": json.loads((d / "list.json").read_text()),
        "lspci": parse_lspci((d / "lspci.txt").read_text()),
        **json.loads((d / "probe.json").read_text()),
        "noc": json.loads((d / "noc.json").read_text()),
    }


def parse_lspci(text: str) -> dict[str, dict[str, Any]]:
    """Per device from `lspci -D -n -vvv`: ids, driver, IOMMU group, and the SR-IOV fields."""
    out: dict[str, dict[str, Any]] = {}
    for block in text.strip().split("\n\n"):
        head = re.match(r"(\S+) [0-9a-f]{4}: ([0-9a-f]{4}):([0-9a-f]{4})", block)
        assert head, f"unexpected lspci block: {block[:80]!r}"
        dev: dict[str, Any] = {"vendor": head[2], "device": head[3]}
        if m := re.search(r"Kernel driver in use: (\S+)", block):
            dev["driver"] = m[1]
        if m := re.search(r"IOMMU group: (\d+)", block):
            dev["iommu_group"] = m[1]
        if m := re.search(r"Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+)", block):
            dev["initial_vfs"], dev["total_vfs"], dev["num_vfs"] = map(int, m.groups())
        if m := re.search(r"VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-f]{4})", block):
            dev["vf_offset"], dev["vf_stride"] = int(m[1]), int(m[2])
            dev["vf_device_id"] = m[3]
        out[head[1]] = dev
    return out


def hex4(v: str | None) -> str | None:
    return None if v is None else v.removeprefix("0x").rjust(4, "0")


def test_the_pfs_are_what_sysfs_and_lspci_call_sr_iov(seen: dict[str, Any]) -> None:
    listed = [p["address"] for p in seen["list"]["pfs"]]
    by_sysfs = [a for a, d in seen["sysfs"].items() if d["totalvfs"] is not None]
    by_lspci = [a for a, d in seen["lspci"].items() if "total_vfs" in d]
    assert listed == by_sysfs == sorted(by_lspci)
    assert len(listed) == 3  # two igb, one NVMe (LabConfig)


def test_each_pf_agrees_with_sysfs_and_lspci(seen: dict[str, Any]) -> None:
    for pf in seen["list"]["pfs"]:
        a = pf["address"]
        s, lp = seen["sysfs"][a], seen["lspci"][a]
        assert pf["total_vfs"] == int(s["totalvfs"])
        assert pf["num_vfs"] == int(s["numvfs"]) == lp["num_vfs"]
        assert pf["cap_total_vfs"] == lp["total_vfs"]
        assert pf["initial_vfs"] == lp["initial_vfs"]
        assert pf["vf_offset"] == int(s["offset"]) == lp["vf_offset"]
        assert pf["vf_stride"] == int(s["stride"]) == lp["vf_stride"]
        assert pf["vf_device_id"] == hex4(s["vf_device"]) == lp["vf_device_id"]
        assert (pf["vendor_id"], pf["device_id"]) == (lp["vendor"], lp["device"])
        assert pf["driver"] == s["driver"] == lp["driver"]
        assert str(pf["iommu_group"]) == s["iommu_group"] == lp["iommu_group"]
        assert pf["netdevs"] == s["net"]
        assert pf["autoprobe"] == (s["drivers_autoprobe"] == "1")


def test_each_vf_agrees_with_sysfs_and_lspci(seen: dict[str, Any]) -> None:
    total = 0
    for pf in seen["list"]["pfs"]:
        links = seen["sysfs"][pf["address"]]["virtfn"]
        assert [v["index"] for v in pf["vfs"]] == sorted(int(i) for i in links)
        for vf in pf["vfs"]:
            total += 1
            a = vf["address"]
            s, lp = seen["sysfs"][a], seen["lspci"][a]
            assert a == links[str(vf["index"])]
            assert vf["driver"] == s["driver"] == lp.get("driver")
            assert vf["netdev"] == (s["net"][0] if s["net"] else None)
            assert str(vf["iommu_group"]) == s["iommu_group"] == lp["iommu_group"]
            assert (vf["vendor_id"], vf["device_id"]) == (lp["vendor"], lp["device"])
            assert vf["device_id"] == pf["vf_device_id"]
            # VFs sit at offset + index * stride from their PF (ARI routing IDs)
            bus, dev, fn = (int(x, 16) for x in re.split(r"[:.]", pf["address"])[1:])
            rid = (bus << 8 | dev << 3 | fn) + pf["vf_offset"] + vf["index"] * pf["vf_stride"]
            assert a == f"0000:{rid >> 8:02x}:{rid >> 3 & 31:02x}.{rid & 7}"
    assert total == 5


def test_the_kernels_links_are_the_derived_addresses(seen: dict[str, Any]) -> None:
    """The real kernel's virtfnN links equal the addresses discovery derives from the PF's
    offset/stride (vfctl/discover_derive.py), and with VFs at rest none of its checks sends a
    PF back to its links: derived, not read, on igb (3 VFs: the middle one is never sampled)
    and NVMe."""
    with_vfs = 0
    for a, (derived, addrs) in seen["derived"].items():
        links = seen["sysfs"][a]["virtfn"]
        assert addrs == [links[str(i)] for i in range(len(links))]
        if links:
            with_vfs += 1
            assert derived, f"{a}: its VFs were read from the links, not derived"
    assert with_vfs == 2


def test_the_lab_kernels_known_facts(seen: dict[str, Any]) -> None:
    pfs = seen["list"]["pfs"]
    igb = next(p for p in pfs if p["driver"] == "igb")  # the first, which has the VFs
    nvme = next(p for p in pfs if p["driver"] == "nvme")
    # igb lowers TotalVFs 8 (capability) to 7 (sriov_totalvfs)
    assert (igb["cap_total_vfs"], igb["total_vfs"]) == (8, 7)
    assert (igb["vf_offset"], igb["vf_stride"], igb["vf_device_id"]) == (128, 2, "10ca")
    assert [v["driver"] for v in igb["vfs"]] == ["igbvf"] * 3
    assert all(v["netdev"] for v in igb["vfs"])
    assert (nvme["total_vfs"], nvme["vf_offset"], nvme["vf_stride"]) == (4, 1, 1)
    assert nvme["autoprobe"] is False and [v["driver"] for v in nvme["vfs"]] == [None, None]
    groups = [v["iommu_group"] for p in seen["list"]["pfs"] for v in p["vfs"]]
    assert len(set(groups)) == len(groups)  # the vIOMMU isolates every VF


def test_c_and_python_parsers_agree_on_every_device(seen: dict[str, Any]) -> None:
    assert seen["have_c"] is True, "the C extension is not built in the guest's view"
    c, py = seen["c"], seen["py"]
    assert len(c) == len(seen["sysfs"]) > 15
    for a, b in zip(c, py, strict=True):
        assert a == b, a["path"]
    assert any(d["sriov"] for d in c) and any(d["vendor_id"] == "ffff" for d in c)  # VFs


def test_vfctl_no_c_forces_python(seen: dict[str, Any]) -> None:
    assert seen["noc"]["have_c"] is False
    assert seen["noc"]["docs"] == seen["py"]
