"""list / show / decode on simulated hosts: the DESIGN §3 JSON contract and bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from needs import missing
from simcli import SimHost, pf_by_driver

from vfctl.pci.address import vf_address

HEX4 = re.compile(r"^[0-9a-f]{4}$")
ADDR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
DUMPS = Path(__file__).parents[1] / "pci" / "data"


def test_list_json_contract(host: SimHost) -> None:
    doc = host("list", "--json").json()
    assert set(doc) == {"pfs"} and len(doc["pfs"]) == 4
    for pf in doc["pfs"]:
        assert ADDR.match(pf["address"])
        for k in ("vendor_id", "device_id", "vf_device_id"):
            assert HEX4.match(pf[k]), (k, pf[k])
        for k in ("total_vfs", "cap_total_vfs", "num_vfs", "vf_offset", "vf_stride"):
            assert isinstance(pf[k], int) and not isinstance(pf[k], bool), k
        assert isinstance(pf["autoprobe"], bool)
        # the kernel's sriov_totalvfs, which the driver may lower below the capability
        assert pf["total_vfs"] == int(host.read(host.dev(pf["address"], "sriov_totalvfs")))
        assert pf["cap_total_vfs"] >= pf["total_vfs"]
    ixgbe = pf_by_driver(host, "ixgbe")
    assert (ixgbe["cap_total_vfs"], ixgbe["total_vfs"], ixgbe["vf_device_id"]) == (64, 63, "10ed")


def test_show_vfs_after_enable_match_routing_rule(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    assert host("enable", pf["netdev"], "3").code == 0
    shown = host("show", pf["address"], "--json").json()
    assert [v["index"] for v in shown["vfs"]] == [0, 1, 2]
    for v in shown["vfs"]:
        # index ↔ address from virtfnN matches offset/stride, and ids come from sysfs not config
        assert v["address"] == vf_address(pf["address"], pf["vf_offset"], pf["vf_stride"], v["index"])
        assert (v["vendor_id"], v["device_id"]) == ("8086", pf["vf_device_id"])
        assert v["driver"] == "igbvf" and v["netdev"] and isinstance(v["iommu_group"], int)
        assert v["attached_to"] == []


@pytest.mark.parametrize("form", ["netdev", "address", "short"])
def test_pf_name_forms(host: SimHost, form: str) -> None:
    pf = pf_by_driver(host, "igb")
    name = {"netdev": pf["netdev"], "address": pf["address"], "short": pf["address"][5:]}[form]
    assert host("show", name, "--json").json()["address"] == pf["address"]


@pytest.mark.parametrize(("name", "code", "words"), [
    ("eth99", 3, "no SR-IOV PF named"),
    ("0000:09:00.0", 3, "no SR-IOV PF"),
    ("03:00", 2, "malformed PCI address"),
    ("0000:03:00.9", 2, "malformed PCI address"),
    ("../../etc", 2, "invalid PF name"),
    ("a/b", 2, "invalid PF name"),
    ("..", 2, "invalid PF name"),
])
def test_bad_pf_names(host: SimHost, name: str, code: int, words: str) -> None:
    before = host.writes()
    r = host("show", name)
    assert r.code == code and words in r.err and r.err.count("\n") == 1
    assert "Traceback" not in r.err and host.writes() == before


def test_unknown_pf_lists_what_exists(host: SimHost) -> None:
    r = host("show", "eth99")
    for pf in host("list", "--json").json()["pfs"]:
        assert pf["address"] in r.err


def test_non_sriov_device_named(host: SimHost) -> None:
    # the management NIC (I210, no SR-IOV) by netdev and by address: named as not a PF
    addr = Path(os.readlink(host.root / "sys/class/net/enp3s0")).parts[-3]
    for name in ("enp3s0", addr):
        r = host("show", name)
        assert r.code == 3 and f"{addr} is not an SR-IOV physical function" in r.err


def test_vf_index_out_of_range(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "2")
    r = host("bind", pf["netdev"], "vf5")
    assert r.code == 3 and "out of range" in r.err and "2 VFs" in r.err


def test_root_that_is_not_sysfs(tmp_path: Path) -> None:
    r = SimHost(tmp_path)("list")
    assert r.code == 2 and "not a sysfs root" in r.err
    r = SimHost(tmp_path / "nope")("list")
    assert r.code == 3 and "does not exist" in r.err


def test_decode_real_dump(host: SimHost) -> None:
    doc = host("decode", str(DUMPS / "8086_10c9_1.hex"), "--json").json()
    assert (doc["vendor_id"], doc["device_id"]) == ("8086", "10c9")
    assert doc["sriov"]["total_vfs"] == 8 and doc["sriov"]["vf_device_id"] == "10ca"
    assert host("decode", str(DUMPS / "8086_10c9_1.hex")).code == 0


def test_decode_bad_files(host: SimHost, tmp_path: Path) -> None:
    garbage = tmp_path / "g.hex"
    garbage.write_text("00: zz zz\nhello\n")
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x86\x80")
    for f, code in ((garbage, 2), (short, 2), (tmp_path / "missing", 3)):
        r = host("decode", str(f), "--json")
        assert r.code == code, (f, r.err)
        assert r.json()["error"]["message"] and r.err.count("\n") == 1


def test_decode_raw_sysfs_config(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    doc = host("decode", str(host.root / host.dev(pf["address"], "config")), "--json").json()
    assert doc["sriov"]["total_vfs"] == pf["cap_total_vfs"]


def test_list_does_not_import_backend_libraries(host: SimHost) -> None:
    code = ("import sys; sys.argv=['vfctl','--root',sys.argv[1],'list','--json'];"
            "from vfctl.cli import main\ntry: main()\nexcept SystemExit: pass\n"
            "print('LOADED', [m for m in ('libvirt','proxmoxer','pyroute2') if m in sys.modules])")
    env = dict(os.environ, VFCTL_BACKEND="auto")
    p = subprocess.run([sys.executable, "-c", code, str(host.root)], capture_output=True,
                       text=True, check=True, env=env)
    assert p.stdout.strip().endswith("LOADED []")


def test_version_and_module_entry() -> None:
    p = subprocess.run([sys.executable, "-m", "vfctl", "--version"], capture_output=True,
                       text=True, check=True)
    assert re.fullmatch(r"vfctl \d+\.\d+\.\d+\n", p.stdout)


def test_lspci_reads_the_simulated_host_like_vfctl(host: SimHost) -> None:
    import shutil

    if not shutil.which("lspci"):
        missing("lspci (pciutils) not installed", "VFCTL_LSPCI")
    pf = pf_by_driver(host, "ixgbe")
    host("enable", pf["netdev"], "4")
    pf = host("show", pf["address"], "--json").json()
    out = subprocess.run(
        ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={host.root}/sys/bus/pci", "-vvv",
         "-s", pf["address"]], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Initial VFs: (\d+), Total VFs: (\d+), Number of VFs: (\d+)", out)
    assert m and (int(m[2]), int(m[3])) == (pf["cap_total_vfs"], pf["num_vfs"])
    m = re.search(r"VF offset: (\d+), stride: (\d+), Device ID: ([0-9a-f]{4})", out)
    assert m and (int(m[1]), int(m[2]), m[3]) == (pf["vf_offset"], pf["vf_stride"], pf["vf_device_id"])


def test_listing_survives_an_auto_detected_vm_manager_that_does_not_answer(
    host: SimHost, tmp_path: Path
) -> None:
    # /etc/pve makes Proxmox the auto-detected backend; no pvesh and no API host: it cannot answer
    (host.root / "etc/pve").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VFCTL_")}
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"
    base = [sys.executable, "-m", "vfctl", "--root", str(host.root)]
    p = subprocess.run([*base, "list", "--json"], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0 and len(json.loads(p.stdout)["pfs"]) == 4
    assert "warning: proxmox inventory unavailable" in p.stderr
    # a mutating command does not pass its in-use checks on a VM manager it could not ask
    pf = pf_by_driver(host, "igb")
    p = subprocess.run([*base, "enable", pf["netdev"], "2"], capture_output=True, text=True,
                       env=env, check=False)
    assert p.returncode == 6 and host.read(host.dev(pf["address"], "sriov_numvfs")) == "0"


def test_virtfn_links_are_cross_checked_with_offset_and_stride(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    host("enable", pf["netdev"], "2")
    assert host("show", pf["netdev"], "--json").json()["notes"] == []
    d = host.root / host.dev(pf["address"])
    a0, a1 = os.readlink(d / "virtfn0"), os.readlink(d / "virtfn1")
    for name, target in (("virtfn0", a1), ("virtfn1", a0)):  # a quirky device: swapped
        (d / name).unlink()
        os.symlink(target, d / name)
    doc = host("show", pf["netdev"], "--json").json()
    # the kernel's links win (index ↔ address), and the disagreement is reported
    assert [v["address"] for v in doc["vfs"]] == [Path(a1).name, Path(a0).name]
    assert any(n.startswith("virtfn0 is ") and "offset/stride say" in n for n in doc["notes"])
    assert "note: virtfn0" in host("show", pf["netdev"]).err
