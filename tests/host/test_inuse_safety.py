"""The in-use rules through the CLI on simulated hosts: enable, disable, bind, unbind and a
profile resize refuse (exit 4, naming the device and the reason) a VF netdev in a bond, a VF
in the bridge carrying the default route, a VF netdev with an address while down; and
`bind --driver X` loads X or refuses before any write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simcli import SimHost, pf_by_driver


def numvfs_writes(h: SimHost) -> list[str]:
    return [w for w in h.writes() if "sriov_numvfs" in w]


def vfs(h: SimHost, pf: dict[str, Any]) -> list[dict[str, Any]]:
    return list(h("show", pf["netdev"], "--json").json()["vfs"])


def enslave(h: SimHost, port: str, master: str, kind: str = "bond") -> None:
    """`ip link set PORT master MASTER` on the simulator (a new bond unless MASTER exists)."""

    def edit(st: dict[str, Any]) -> None:
        if master not in st["vnet"]:
            st["vnet"][master] = {"kind": kind, "ifindex": 90, "mac": "02:00:00:00:00:90",
                                  "mtu": 1500, "up": True, "ports": []}  # fmt: skip
        st["vnet"][master].setdefault("ports", []).append(port)
        for d in st["devices"].values():
            if (d.get("net") or {}).get("ifname") == port:
                d["net"]["master"] = master

    h.edit_state(edit)


def test_vf_in_a_bond_blocks_enable_disable_and_bind_until_force(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    assert host("enable", pf["netdev"], "2").code == 0
    vf0 = vfs(host, pf)[0]
    enslave(host, vf0["netdev"], "bond0")
    before = numvfs_writes(host)
    for args in (("disable", pf["netdev"]), ("enable", pf["netdev"], "4"),
                 ("bind", pf["netdev"], "vf0"), ("unbind", pf["netdev"], "vf0", "--force")):
        r = host(*args)
        if args[0] == "unbind":  # no override: nothing to take away, nothing refused
            assert r.code == 0
            continue
        assert r.code == 4, (args, r.err)
        assert f"{vf0['netdev']} is a member of bond bond0" in r.err and "--force" in r.err
        assert vf0["address"] in r.err
    assert numvfs_writes(host) == before and vfs(host, pf)[0]["driver"] == "ixgbevf"
    assert (host.root / f"sys/class/net/{vf0['netdev']}/master").is_symlink()  # still a port
    assert host("disable", pf["netdev"], "--force").code == 0


def test_vf_port_of_the_default_route_bridge_needs_force_host_nic(host: SimHost) -> None:
    pf = pf_by_driver(host, "ixgbe")
    assert host("enable", pf["netdev"], "2").code == 0
    vf1 = vfs(host, pf)[1]
    enslave(host, vf1["netdev"], "vmbr0")  # the preset's vmbr0 has the default route
    before = host.writes()
    for args in (("disable", pf["netdev"], "--force"), ("bind", pf["netdev"], "vf1", "--force"),
                 ("enable", pf["netdev"], "3", "--force")):
        r = host(*args)
        assert r.code == 4, (args, r.err)
        assert f"{vf1['netdev']} carries the host's default route (via vmbr0)" in r.err
        assert "--force-host-nic" in r.err and vf1["address"] in r.err
    assert host.writes() == before
    r = host("bind", pf["netdev"], "vf1", "--force-host-nic", "--json")
    assert r.code == 0, r.err
    assert vfs(host, pf)[1]["driver"] == "vfio-pci"


def test_address_on_a_down_vf_netdev_counts_as_in_use(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    assert host("enable", pf["netdev"], "2").code == 0
    vf0 = vfs(host, pf)[0]

    def addr_while_down(st: dict[str, Any]) -> None:
        st["addresses"][vf0["netdev"]] = ["198.51.100.9/24"]
        st["devices"][vf0["address"]]["net"]["up"] = False

    host.edit_state(addr_while_down)
    r = host("disable", pf["netdev"])
    assert r.code == 4 and f"netdev {vf0['netdev']} is down but has 198.51.100.9/24" in r.err
    r = host("bind", pf["netdev"], "vf0")
    assert r.code == 4 and "has addresses 198.51.100.9/24 (link down)" in r.err
    assert vf0["address"] in r.err
    assert host("bind", pf["netdev"], "vf0", "--force").code == 0


def test_profile_resize_applies_the_same_rules(make_host: Any, tmp_path: Path) -> None:
    h = make_host("minimal")
    assert h("enable", "enp1s0", "2").code == 0
    vf0 = h("show", "enp1s0", "--json").json()["vfs"][0]
    enslave(h, vf0["netdev"], "bond0")
    prof = tmp_path / "p.yaml"
    prof.write_text("version: 1\npfs:\n  - match: {netdev: enp1s0}\n    total-vfs: 4\n")
    before = numvfs_writes(h)
    r = h("apply", str(prof))
    assert r.code == 4 and f"{vf0['netdev']} is a member of bond bond0" in r.err
    assert numvfs_writes(h) == before


def test_bind_to_a_driver_not_loaded_loads_its_module_first(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    assert host("enable", pf["netdev"], "1").code == 0
    assert not host.exists("sys/bus/pci/drivers/uio_pci_generic")
    before = host.writes()
    r = host("bind", pf["netdev"], "vf0", "--driver", "uio_pci_generic", "--check", "--json")
    assert r.code == 0 and r.json()["changed"] is True
    assert "not loaded: the run loads module uio_pci_generic first" in r.json()["warnings"][0]
    assert not host.exists("sys/bus/pci/drivers/uio_pci_generic") and host.writes() == before
    r = host("bind", pf["netdev"], "vf0", "--driver", "uio_pci_generic", "--json")
    assert r.code == 0, r.err
    assert vfs(host, pf)[0]["driver"] == "uio_pci_generic"


def test_bind_to_a_driver_nobody_has_is_refused_before_any_write(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    assert host("enable", pf["netdev"], "1").code == 0
    before = host.writes()
    for extra in ((), ("--check",)):
        r = host("bind", pf["netdev"], "vf0", "--driver", "igb_uio", "--json", *extra)
        assert r.code == 2, r.err
        assert r.json()["error"]["kind"] == "invalid" and "igb_uio" in r.json()["error"]["message"]
    assert host.writes() == before and vfs(host, pf)[0]["driver"] == "igbvf"
