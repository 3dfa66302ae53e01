"""The netlink model: VF settings with igb/ixgbe semantics, link state for safety checks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from simhelpers import dev, errno_of, log_lines, rd

from vfctl import sim

PF = "0000:01:00.0"


def test_defaults_and_round_trip(minimal: Path) -> None:
    root = minimal
    assert sim.vf_info(root, "enp1s0") == []
    sim.write(root, dev(PF, "sriov_numvfs"), "3")
    info = sim.vf_info(root, "enp1s0")
    assert [v["vf"] for v in info] == [0, 1, 2]
    assert info[0]["mac"] == "00:00:00:00:00:00" and info[0]["spoofchk"] is True
    assert info[0]["trust"] is False and info[0]["vlan"] == 0 and info[0]["query_rss"] is None
    sim.set_vf(root, "enp1s0", 1, mac="02:00:00:00:00:11", vlan=100, qos=3, trust=True,
               spoofchk=False)  # fmt: skip
    v1 = sim.vf_info(root, "enp1s0")[1]
    assert (v1["mac"], v1["vlan"], v1["qos"], v1["trust"], v1["spoofchk"]) == (
        "02:00:00:00:00:11", 100, 3, True, False,
    )  # fmt: skip
    assert sim.vf_info(root, "enp1s0")[0]["vlan"] == 0
    # the VF's netdev takes the MAC the PF gave it
    assert rd(root, "sys/class/net/enp1s0v1/address") == "02:00:00:00:00:11"
    assert [line[0] for line in log_lines(root)][-4:] == [
        "netlink/enp1s0/vf1/mac", "netlink/enp1s0/vf1/vlan",
        "netlink/enp1s0/vf1/spoofchk", "netlink/enp1s0/vf1/trust",
    ]  # fmt: skip
    # settings reset when the VFs are re-created
    sim.write(root, dev(PF, "sriov_numvfs"), "0")
    sim.write(root, dev(PF, "sriov_numvfs"), "2")
    assert sim.vf_info(root, "enp1s0")[1]["mac"] == "00:00:00:00:00:00"


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"mac": "01:00:00:00:00:01"}, errno.EINVAL),  # multicast
        ({"mac": "zz"}, errno.EINVAL),
        ({"vlan": 4096}, errno.EINVAL),
        ({"vlan": 5, "qos": 8}, errno.EINVAL),
        ({"vlan": 5, "vlan_proto": "802.1ad"}, errno.EPROTONOSUPPORT),
        ({"link_state": "enable"}, errno.EOPNOTSUPP),  # igb has no ndo_set_vf_link_state
        ({"query_rss": True}, errno.EOPNOTSUPP),
        ({"min_tx_rate": 10}, errno.EINVAL),  # igb: min rate is EINVAL, not EOPNOTSUPP
    ],
)
def test_igb_refusals(minimal: Path, settings: dict[str, object], code: int) -> None:
    sim.write(minimal, dev(PF, "sriov_numvfs"), "2")
    assert errno_of(lambda: sim.set_vf(minimal, "enp1s0", 0, **settings)) == code
    assert sim.vf_info(minimal, "enp1s0")[0] == {"vf": 0, **_igb_defaults()}


def _igb_defaults() -> dict[str, object]:
    return {"mac": "00:00:00:00:00:00", "vlan": 0, "qos": 0, "vlan_proto": "802.1Q",
            "spoofchk": True, "trust": False, "link_state": "auto", "min_tx_rate": 0,
            "max_tx_rate": 0, "query_rss": None}  # fmt: skip


def test_index_beyond_numvfs_and_unknown_netdev(minimal: Path) -> None:
    assert errno_of(lambda: sim.set_vf(minimal, "enp1s0", 0, trust=True)) == errno.EINVAL
    sim.write(minimal, dev(PF, "sriov_numvfs"), "2")
    assert errno_of(lambda: sim.set_vf(minimal, "enp1s0", 2, trust=True)) == errno.EINVAL
    assert errno_of(lambda: sim.set_vf(minimal, "nope0", 0, trust=True)) == errno.ENODEV
    assert errno_of(lambda: sim.vf_info(minimal, "nope0")) == errno.ENODEV
    assert errno_of(lambda: sim.link_info(minimal, "nope0")) == errno.ENODEV
    with pytest.raises(TypeError):
        sim.set_vf(minimal, "enp1s0", 0, colour="blue")


def test_max_tx_rate_needs_carrier_like_the_lab(make_host) -> None:
    root = make_host("lab")
    sim.write(root, dev("0000:01:00.0", "sriov_numvfs"), "2")
    assert errno_of(lambda: sim.set_vf(root, "eth0", 0, max_tx_rate=100)) == errno.EINVAL
    sim.set_link(root, "eth0", up=True)
    assert rd(root, "sys/class/net/eth0/operstate") == "up"
    sim.set_vf(root, "eth0", 0, max_tx_rate=100)
    assert sim.vf_info(root, "eth0")[0]["max_tx_rate"] == 100
    assert errno_of(lambda: sim.set_vf(root, "eth0", 0, max_tx_rate=1001)) == errno.EINVAL


def test_a_failing_attribute_keeps_the_earlier_ones(minimal: Path) -> None:
    sim.write(minimal, dev(PF, "sriov_numvfs"), "1")
    err = errno_of(lambda: sim.set_vf(minimal, "enp1s0", 0, mac="02:aa:00:00:00:01",
                                      link_state="disable", trust=True))  # fmt: skip
    assert err == errno.EOPNOTSUPP
    v = sim.vf_info(minimal, "enp1s0")[0]
    assert v["mac"] == "02:aa:00:00:00:01" and v["trust"] is False  # do_setvfinfo order


def test_ixgbe_semantics(make_host) -> None:
    root = make_host("default")
    sim.write(root, dev("0000:01:00.0", "sriov_numvfs"), "2")
    sim.set_vf(root, "enp1s0f0", 1, link_state="disable", query_rss=True, max_tx_rate=1000)
    v = sim.vf_info(root, "enp1s0f0")[1]
    assert (v["link_state"], v["query_rss"], v["max_tx_rate"]) == ("disable", True, 1000)
    for bad in ({"max_tx_rate": 10}, {"max_tx_rate": 10001}, {"min_tx_rate": 5}):
        assert errno_of(lambda b=bad: sim.set_vf(root, "enp1s0f0", 1, **b)) == errno.EINVAL
    assert errno_of(lambda: sim.set_vf(root, "enp1s0f0", 1, link_state="sideways")) == (
        errno.EINVAL
    )
    # the I210 has no SR-IOV: every VF index is out of range
    assert errno_of(lambda: sim.set_vf(root, "enp3s0", 0, trust=True)) == errno.EINVAL


def test_link_info_shapes(make_host) -> None:
    root = make_host("default")
    br = sim.link_info(root, "vmbr0")
    assert br["kind"] == "bridge" and br["ports"] == ["enp3s0"] and br["up"]
    assert br["routes"] == [{"dst": "default", "gateway": "192.0.2.1", "dev": "vmbr0"}]
    nic = sim.link_info(root, "enp1s0f0")
    assert nic["pci_address"] == "0000:01:00.0" and nic["operstate"] == "up"
    assert nic["address"] == rd(root, "sys/class/net/enp1s0f0/address")
    assert nic["ifindex"] == int(rd(root, "sys/class/net/enp1s0f0/ifindex"))
    lo = sim.link_info(root, "lo")
    assert lo["addresses"] == ["127.0.0.1/8"] and lo["kind"] == "loopback"
    sim.set_link(root, "enp1s0f0", up=False)
    assert sim.link_info(root, "enp1s0f0")["operstate"] == "down"
    assert rd(root, "sys/class/net/enp1s0f0/carrier") == "0"


def test_links_is_every_link_at_once_and_a_bond_port_has_no_brport(make_host) -> None:
    root = make_host("default")
    sim.write(root, dev("0000:02:00.0", "sriov_numvfs"), "2")
    with sim.locked(root) as st:  # a bond over VF 0's netdev, as `ip link set … master bond0`
        vf0 = next(d for d in st["devices"].values() if d.get("vf_index") == 0)
        st["vnet"]["bond0"] = {"kind": "bond", "ifindex": 90, "mac": "02:00:00:00:00:90",
                               "mtu": 1500, "up": True, "ports": [vf0["net"]["ifname"]]}  # fmt: skip
        vf0["net"]["master"] = "bond0"
    port = vf0["net"]["ifname"]
    got = {d["ifname"]: d for d in sim.links(root)}
    assert got == {n: sim.link_info(root, n) for n in got}
    assert {"lo", "vmbr0", "bond0", "enp3s0", port} <= set(got)
    assert got["bond0"]["kind"] == "bond" and got[port]["master"] == "bond0"
    assert os.readlink(root / f"sys/class/net/{port}/master").endswith("/bond0")
    assert not (root / f"sys/class/net/{port}/brport").exists()
    assert (root / "sys/class/net/enp3s0/brport").is_dir()  # the bridge's port keeps it


def test_stub_drivers_load_and_bind_by_override_only(minimal: Path) -> None:
    sim.write(minimal, dev(PF, "sriov_numvfs"), "1")
    vf = os.readlink(minimal / "sys/bus/pci/devices" / PF / "virtfn0").rsplit("/", 1)[-1]
    for drv, module in (("uio_pci_generic", "uio_pci_generic"), ("pci-stub", "pci_stub")):
        sim.modprobe(minimal, module)
        assert (minimal / f"sys/bus/pci/drivers/{drv}").is_dir()
        assert not (minimal / f"sys/bus/pci/drivers/{drv}" / vf).exists()  # no id table
        sim.write(minimal, dev(vf, "driver_override"), drv)
        sim.write(minimal, dev(vf, "driver") + "/unbind", vf)
        sim.write(minimal, "sys/bus/pci/drivers_probe", vf)
        assert os.readlink(minimal / dev(vf, "driver")).endswith(f"/{drv}")


def test_reads_leave_the_state_file_alone(minimal: Path) -> None:
    """Netlink reads and settle() with nothing pending commit nothing (state.json is replaced
    on every commit: the same inode means no commit); test_sim_faults has the pending case."""
    sim.write(minimal, dev(PF, "sriov_numvfs"), "2")
    state = minimal / ".vfctl-sim" / "state.json"
    before = os.stat(state)
    sim.vf_info(minimal, "enp1s0")
    sim.vf_info_all(minimal, ["enp1s0"])
    sim.vf_stats(minimal, "enp1s0")
    sim.link_info(minimal, "enp1s0")
    sim.links(minimal)
    sim.settle(minimal)
    after = os.stat(state)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
