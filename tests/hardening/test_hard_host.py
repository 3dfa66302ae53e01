"""Issue 11 items 6, 8, 12, 13: host trees and arguments that used to hang, slip through,
get coerced or restyle the output.

Runs that could hang on today's code run as child processes (hard.vfctl: a hang fails the
test through the subprocess timeout instead of stalling the suite).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hard import cli, vfctl

PF = "0000:01:00.0"  # enp1s0f0, ixgbe, 63 VFs
IGB = "0000:02:00.0"  # enp2s0f0, igb, 7 VFs


def dev(root: Path, addr: str, attr: str) -> Path:
    return Path(os.path.realpath(root / "sys/bus/pci/devices" / addr)) / attr


def fifo_in_place(p: Path) -> None:
    p.unlink()
    os.mkfifo(p)


# ---------------------------------------------------------------- item 6: no hangs


def test_fifo_config_and_attribute_do_not_block(simroot: Path) -> None:
    fifo_in_place(dev(simroot, PF, "config"))
    fifo_in_place(dev(simroot, IGB, "sriov_drivers_autoprobe"))
    r = vfctl("--backend", "none", "list", "--json", root=simroot)
    assert r.code == 0, r.err
    pfs = {p["address"]: p for p in r.json()["pfs"]}
    assert pfs[PF]["cap_total_vfs"] is None  # the config space could not be read
    assert pfs[IGB]["autoprobe"] is None
    r = vfctl("--backend", "none", "enable", "enp1s0f0", "2", "--check", root=simroot)
    assert r.code == 0, r.err


@pytest.mark.parametrize("cmd", ["decode", "plan", "apply"])
def test_fifo_as_input_file_refused(tmp_path: Path, cmd: str) -> None:
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    r = vfctl("--backend", "none", cmd, str(fifo), root=tmp_path)
    assert r.code == 2, r.err
    assert "not a regular file" in r.err


def test_sim_snapshot_of_a_tree_with_fifos(simroot: Path, tmp_path: Path) -> None:
    fifo_in_place(dev(simroot, PF, "config"))
    fifo_in_place(dev(simroot, IGB, "vendor"))
    r = vfctl("sim", "snapshot", str(tmp_path / "snap"), root=simroot)
    assert r.code == 0, r.err
    assert (tmp_path / "snap" / ".vfctl-sim").is_dir()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300"])
@pytest.mark.parametrize("opt", ["--wait", "--timeout"])
def test_waits_are_finite_and_non_negative(simroot: Path, opt: str, value: str) -> None:
    r = cli(simroot, "--backend", "none", "enable", "enp2s0f0", "2", f"{opt}={value}")
    assert r.code == 2, r.err
    assert f"invalid {opt}" in r.err
    assert not dev(simroot, IGB, "virtfn0").exists()


@pytest.mark.parametrize(
    "args", [("recover",), ("confirm",), ("disable", "enp2s0f0"), ("bind", "enp2s0f0", "vf0")]
)
def test_wait_checked_by_every_locking_command(simroot: Path, args: tuple[str, ...]) -> None:
    r = cli(simroot, "--backend", "none", *args, "--wait", "nan")
    assert r.code == 2, r.err
    assert "invalid --wait" in r.err


# ---------------------------------------------------------------- item 12: garbage counts


@pytest.mark.parametrize("attr", ["sriov_numvfs", "sriov_totalvfs"])
@pytest.mark.parametrize("value", ["garbage", "-5", "4294967295", "7\n8"])
def test_garbage_vf_counts_warn_in_listings_and_refuse_changes(
    simroot: Path, attr: str, value: str
) -> None:
    dev(simroot, IGB, attr).write_text(value + "\n")
    r = cli(simroot, "--backend", "none", "list")
    assert r.code == 0, r.err
    assert "warning:" in r.err and attr in r.err and IGB in r.err
    r = cli(simroot, "--backend", "none", "show", "enp2s0f0", "--json")
    assert r.code == 0
    assert any(attr in p for p in r.json()["problems"])
    r = cli(simroot, "--backend", "none", "enable", "enp2s0f0", "2", "--json")
    assert r.code == 4, r.out + r.err
    assert attr in r.json()["error"]["message"]
    assert not dev(simroot, IGB, "virtfn0").exists()
    # the other PFs stay usable
    r = cli(simroot, "--backend", "none", "enable", "enp1s0f0", "1")
    assert r.code == 0, r.err


def test_huge_totalvfs_refused_not_spun(simroot: Path) -> None:
    dev(simroot, IGB, "sriov_totalvfs").write_text("100000000\n")
    r = vfctl("--backend", "none", "enable", "enp2s0f0", "5000000", "--timeout", "1", root=simroot)
    assert r.code in (2, 4), r.err
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- item 8: full matches


@pytest.mark.parametrize("driver", ["..", "a b", "vfio-pci\n", "x/y", "", "a" * 56])
def test_driver_names_are_module_names(simroot: Path, driver: str) -> None:
    cli(simroot, "--backend", "none", "enable", "enp2s0f0", "2")
    r = cli(simroot, "--backend", "none", "bind", "enp2s0f0", "vf0", "--driver", driver)
    assert r.code == 2, r.err
    assert "kernel module name" in r.err


def test_profile_driver_with_newline_refused(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        'version: 1\npfs:\n  - match: {netdev: eth2}\n    vfs:\n      - {id: 0, driver: "vfio-pci\\n"}\n'
    )
    r = cli(tmp_path, "--backend", "none", "plan", str(f))
    assert r.code == 2
    assert ":5:" in r.err


@pytest.mark.parametrize("mid", ["id\n", "id x", "1abc", ""])
def test_mapping_id_refused_before_asking_pve(simroot: Path, mid: str) -> None:
    env = {
        "VFCTL_PVE_HOST": "127.0.0.1:9",  # nothing listens: the refusal must come first
        "VFCTL_PVE_USER": "vfctl@pve",
        "VFCTL_PVE_TOKEN_NAME": "ci",
        "VFCTL_PVE_TOKEN_VALUE": "3f2a9c1e-7d44-4b8e-9a51-0c6a2b7e9d10",
    }
    args = ("--backend", "proxmox", "attach", "101", "enp1s0f0", "vf1", "--mapping", mid)
    r = cli(simroot, *args, env=env)
    assert r.code == 2, r.err
    assert "invalid --mapping" in r.err


def test_pci_address_with_trailing_newline_refused() -> None:
    from vfctl.errors import UsageError
    from vfctl.pci import address

    assert not address.looks_like_address("0000:01:00.0\n")
    assert address.normalize(" 01:00.0\n") == "0000:01:00.0"  # typed input, normalised
    with pytest.raises(UsageError):
        address.parse("01:00.0\nx")


# ---------------------------------------------------------------- item 13: rich markup


def test_host_strings_are_not_markup(simroot: Path, tmp_path: Path) -> None:
    from vfctl import sim

    with sim.locked(simroot) as st:
        st["devices"][IGB]["net"]["ifname"] = "[reverse]eth9"
    assert cli(simroot, "--backend", "none", "enable", "[reverse]eth9", "2").code == 0
    for args in (("list", "--all"), ("show", "[reverse]eth9")):
        r = cli(simroot, "--backend", "none", *args)
        assert r.code == 0, r.err
        assert "[reverse]eth9" in r.out, r.out
    r = cli(simroot, "--backend", "none", "enable", "[reverse]eth9", "0", "--check")
    assert "[reverse]eth9" in r.out or IGB in r.out


def test_decode_offsets_are_not_markup(tmp_path: Path) -> None:
    from vfctl.pci import configspace

    data = bytearray(256)
    data[0:4] = b"\x86\x80\xfb\x10"
    data[0x06] = 0x10
    data[0x34] = 0xA0
    data[0xA0], data[0xA1] = 0x10, 0x00
    data[0xA2] = 0x02
    f = tmp_path / "cfg.bin"
    f.write_bytes(bytes(data))
    assert configspace.parse(bytes(data))["capabilities"][0]["offset"] == 0xA0
    r = cli(tmp_path, "decode", str(f))
    assert r.code == 0, r.err
    assert "[a0] PCI Express" in r.out, r.out


def test_list_json_stays_one_document_with_problems(simroot: Path) -> None:
    dev(simroot, IGB, "sriov_numvfs").write_text("garbage\n")
    r = cli(simroot, "--backend", "none", "list", "--json")
    doc = json.loads(r.out)
    assert next(p["problems"] for p in doc["pfs"] if p["address"] == IGB)
