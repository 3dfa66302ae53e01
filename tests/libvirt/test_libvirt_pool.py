"""VF pools on a real, isolated libvirtd: `vfctl pool …`, `attach/detach --pool`, `attach … any`.

libvirt checks every ``<address>`` of a hostdev network against sysfs when the network is
defined ("is not an SR-IOV Virtual Function"), so this module's daemon sees a simulated
host's PCI tree as its /sys/bus/pci (``Libvirtd(pci_root=…)``); vfctl writes the same host.
Guests are never started with a pool VF here (no IOMMU on this machine): the lab does that.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from libvirt_helpers import domain_xml
from libvirtd import Libvirtd, LibvirtdError
from needs import missing

from vfctl.backends.libvirt import LibvirtBackend
from vfctl.backends.libvirt_pool import LibvirtPools
from vfctl.backends.libvirt_xml import NetworkXml, network_interfaces
from vfctl.discover import discover
from vfctl.host.open import open_host
from vfctl.plan import Action, Context, ExecutionFailed, execute, op
from vfctl.pools import PoolSettings

pytestmark = pytest.mark.libvirtd
PF = "enp1s0f0"
INACTIVE = 2


def vfctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfctl", *args], capture_output=True, text=True, timeout=120
    )


@dataclass
class Lab:
    root: Path
    daemon: Libvirtd
    conn: Any
    vfs: tuple[str, ...]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return vfctl("--root", str(self.root), "--libvirt-uri", self.daemon.uri, *args)

    def json(self, *args: str, rc: int = 0) -> dict[str, Any]:
        r = self.run(*args, "--json")
        assert r.returncode == rc, f"exit {r.returncode}: {r.stderr}"
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def net(self, name: str) -> NetworkXml:
        return NetworkXml.from_xml(self.conn.networkLookupByName(name).XMLDesc(0))

    def virsh_net(self, name: str) -> ET.Element:
        """`virsh net-dumpxml`, as an operator would check it."""
        r = subprocess.run(
            ["virsh", "-c", self.daemon.uri, "net-dumpxml", name],
            capture_output=True,
            text=True,
            check=True,
        )
        return ET.fromstring(r.stdout)

    def networks(self) -> set[str]:
        return {n.name() for n in self.conn.listAllNetworks(0)}

    def vf(self, index: int) -> dict[str, Any]:
        doc: dict[str, Any] = self.json("show", PF)["vfs"][index]
        return doc


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("pool-host") / "host"
    assert vfctl("sim", "init", str(root)).returncode == 0
    r = vfctl("--root", str(root), "--backend", "none", "enable", PF, "8")
    assert r.returncode == 0, r.stderr
    daemon = Libvirtd(tmp_path_factory.mktemp("pool-libvirtd"), pci_root=root)
    try:
        daemon.start()
    except LibvirtdError as exc:
        missing(f"isolated libvirtd could not start: {exc}", "VFCTL_LIBVIRTD")
    import libvirt

    conn = libvirt.open(daemon.uri)
    shown = json.loads(vfctl("--root", str(root), "--backend", "none", "show", PF, "--json").stdout)
    try:
        yield Lab(root, daemon, conn, tuple(v["address"] for v in shown["vfs"]))
    finally:
        conn.close()
        daemon.stop()


@pytest.fixture
def domain(lab: Lab) -> Iterator[Any]:
    dom = lab.conn.defineXML(domain_xml(f"vfctl-p-{uuid.uuid4().hex[:8]}"))
    yield dom
    with contextlib.suppress(Exception):
        dom.undefine()


def _addrs(el: ET.Element) -> list[str]:
    return [
        f"{int(a.get('domain', '0'), 16):04x}:{int(a.get('bus', '0'), 16):02x}:"
        f"{int(a.get('slot', '0'), 16):02x}.{int(a.get('function', '0'), 16):x}"
        for a in el.findall("forward/address")
    ]


def test_create_network_settings_binding_and_idempotence(lab: Lab) -> None:
    plan = lab.json("pool", "create", "tenant-a", PF, "vf0-2", "--vlan", "42", "--trust", "off",
                    "--spoofchk", "on", "--mac", "auto", "--check")  # fmt: skip
    assert plan["changed"] is True and "tenant-a" not in lab.networks()
    ops = [a["op"] for a in plan["actions"]]
    assert ops[-1] == "libvirt_pool.put" and "pci.driver" in ops and "netlink.vf" in ops

    done = lab.json("pool", "create", "tenant-a", PF, "vf0-2", "--vlan", "42", "--trust", "off",
                    "--spoofchk", "on", "--mac", "auto")  # fmt: skip
    assert done["changed"] is True and done["error"] is None
    net = lab.virsh_net("tenant-a")
    fwd = net.find("forward")
    assert fwd is not None and (fwd.get("mode"), fwd.get("managed")) == ("hostdev", "no")
    assert fwd.find("pf") is None  # exactly the pool, never the whole PF
    assert _addrs(net) == list(lab.vfs[:3])
    tag = net.find("vlan/tag")
    assert tag is not None and tag.get("id") == "42"
    n = lab.conn.networkLookupByName("tenant-a")
    assert n.isActive() and n.isPersistent() and n.autostart()
    for i in range(3):  # the host side: vfio-pci, VLAN, trust, a stable MAC per VF
        vf = lab.vf(i)
        assert vf["driver"] == "vfio-pci" and vf["vlan"] == 42 and vf["trust"] is False
        assert vf["mac"] not in (None, "00:00:00:00:00:00")
    assert len({lab.vf(i)["mac"] for i in range(3)}) == 3
    assert lab.vf(3)["driver"] != "vfio-pci"  # not in the pool: untouched

    again = lab.json("pool", "create", "tenant-a", PF, "vf0-2", "--vlan", "42")
    assert (again["changed"], again["actions"]) == (False, [])

    shown = lab.json("pool", "show", "tenant-a")
    assert shown["backend"] == "libvirt" and shown["pf"] == "0000:01:00.0"
    assert [m["address"] for m in shown["members"]] == list(lab.vfs[:3])
    assert {m["state"] for m in shown["members"]} == {"free"} and shown["free"] == 3
    assert all(m["drift"] == [] for m in shown["members"])
    assert shown["settings"]["vlan"] == 42 and shown["settings"]["mac"] == "auto"
    listed = lab.json("pool", "list")
    assert "tenant-a" in [p["name"] for p in listed["pools"]]

    # drift: change one member's VLAN behind the pool's back; show says so, sync repairs it
    assert lab.run("set", PF, "vf1", "--vlan", "7").returncode == 0
    drift = lab.json("pool", "show", "tenant-a")["members"][1]["drift"]
    assert drift == ["vlan is 7, pool wants 42"]
    synced = lab.json("pool", "sync", "tenant-a")
    assert synced["changed"] is True and lab.vf(1)["vlan"] == 42

    assert lab.json("pool", "delete", "tenant-a")["changed"] is True
    assert "tenant-a" not in lab.networks()


def test_add_remove_and_attach_detach_by_pool(lab: Lab, domain: Any) -> None:
    lab.json("pool", "create", "tenant-b", PF, "vf4", "--vlan", "3")
    lab.json("pool", "add", "tenant-b", PF, "vf5,vf6")
    assert _addrs(lab.virsh_net("tenant-b")) == list(lab.vfs[4:7])
    assert lab.vf(6)["driver"] == "vfio-pci" and lab.vf(6)["vlan"] == 3  # the pool's settings
    assert lab.run("set", PF, "vf4", "--vlan", "9").returncode == 0  # drift on a staying member
    lab.json("pool", "remove", "tenant-b", PF, "vf5")  # is not this command's business
    assert _addrs(lab.virsh_net("tenant-b")) == [lab.vfs[4], lab.vfs[6]]
    assert lab.json("pool", "show", "tenant-b")["members"][0]["drift"] == [
        "vlan is 9, pool wants 3"
    ]
    r = lab.run("pool", "remove", "tenant-b", PF, "vf4,vf6")
    assert r.returncode == 2 and "pool delete" in r.stderr

    vm = domain.name()
    att = lab.json("attach", vm, "--pool", "tenant-b", "--mac", "52:54:00:00:0b:01")
    assert [a["op"] for a in att["actions"]] == ["libvirt_pool.iface_attach"]
    (iface,) = list(network_interfaces(domain.XMLDesc(INACTIVE)))
    assert (iface.network, iface.mac) == ("tenant-b", "52:54:00:00:0b:01")
    el = ET.fromstring(iface.xml)
    assert el.get("type") == "network"
    assert lab.json("attach", vm, "--pool", "tenant-b")["changed"] is False
    assert lab.json("pool", "show", "tenant-b")["vms"] == [vm]

    # refusals: deleting a referenced pool, mixing --pool with a VF, an unknown pool
    r = lab.run("pool", "delete", "tenant-b")
    assert r.returncode == 4 and vm in r.stderr and "--force" in r.stderr
    assert "tenant-b" in lab.networks()
    assert lab.run("attach", vm, PF, "vf1", "--pool", "tenant-b").returncode == 2
    assert lab.run("attach", vm, "--pool", "nope").returncode == 3

    gone = lab.json("detach", vm, "--pool", "tenant-b")
    assert [a["op"] for a in gone["actions"]] == ["libvirt_pool.iface_detach"]
    assert list(network_interfaces(domain.XMLDesc(INACTIVE))) == []
    lab.json("attach", vm, "--pool", "tenant-b")
    forced = lab.json("pool", "delete", "tenant-b", "--force")
    assert [a["op"] for a in forced["actions"]] == [
        "libvirt_pool.iface_detach",
        "libvirt_pool.put",
    ]
    assert "tenant-b" not in lab.networks()
    assert list(network_interfaces(domain.XMLDesc(INACTIVE))) == []


def test_foreign_network_is_never_touched(lab: Lab) -> None:
    a = lab.vfs[7]
    dom, bus, rest = a.split(":")
    slot, fn = rest.split(".")
    xml = (
        "<network><name>theirs</name><forward mode='hostdev' managed='yes'>"
        f"<address type='pci' domain='0x{dom}' bus='0x{bus}' slot='0x{slot}' "
        f"function='0x{fn}'/></forward></network>"
    )
    lab.conn.networkDefineXML(xml)
    before = lab.conn.networkLookupByName("theirs").XMLDesc(0)
    try:
        for args in (
            ("pool", "create", "theirs", PF, "vf7"),
            ("pool", "add", "theirs", PF, "vf7"),
            ("pool", "delete", "theirs"),
            ("pool", "delete", "theirs", "--force"),
        ):
            r = lab.run(*args)
            assert r.returncode in (3, 4), (args, r.stderr)
            assert "Traceback" not in r.stderr
        r = lab.run("pool", "create", "mine", PF, "vf7")  # its VF is not free for another pool
        assert r.returncode == 4 and "theirs" in r.stderr, r.stderr
        assert lab.conn.networkLookupByName("theirs").XMLDesc(0) == before
        assert "mine" not in lab.networks()
        assert "theirs" not in [p["name"] for p in lab.json("pool", "list")["pools"]]
    finally:
        lab.conn.networkLookupByName("theirs").undefine()


def test_bad_input_changes_nothing(lab: Lab) -> None:
    before = lab.json("show", PF)
    for args in (
        ("pool", "create", "9bad", PF, "vf0"),
        ("pool", "create", "ok-name", PF, "vf0", "--vlan", "5000"),
        ("pool", "create", "ok-name", PF, "vf0", "--mac", "52:54:00:00:00:01"),
        ("pool", "create", "ok-name", PF, "vf0", "--trust", "maybe"),
        ("pool", "create", "ok-name", PF, "vf0", "--backend", "xen"),
        ("pool", "create", "ok-name", PF, "vf99"),
        ("pool", "create", "ok-name", "nosuchpf", "vf0"),
        ("pool", "add", "nosuch", PF, "vf0"),
        ("pool", "show", "nosuch"),
    ):
        r = lab.run(*args)
        assert r.returncode in (2, 3), (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vfctl: error:"), (args, r.stderr)
    assert "ok-name" not in lab.networks()
    assert lab.json("show", PF) == before


def test_attach_any_takes_the_lowest_free_vf(lab: Lab, domain: Any) -> None:
    lab.json("pool", "create", "tenant-c", PF, "vf0,vf1")
    try:
        vm = domain.name()
        first = lab.json("attach", vm, PF, "any", "--mode", "hostdev")
        assert first["actions"][-1]["target"] == f"{vm} {lab.vfs[2]}"  # vf0-1 pooled
        second = lab.json("attach", vm, PF, "any")
        assert second["actions"][-1]["target"] == f"{vm} {lab.vfs[3]}"  # vf2 is attached now
    finally:
        lab.json("pool", "delete", "tenant-c")


@op("test.fail")
def _op_fail(ctx: Context, p: Any) -> None:
    raise OSError(5, "injected failure")


def test_rollback_restores_network_and_domain(lab: Lab, domain: Any, tmp_path: Path) -> None:
    be = LibvirtBackend.connect(lab.daemon.uri)
    pl = LibvirtPools(be)

    pf = next(p for p in discover(open_host(lab.root)).pfs if p.netdev == PF)
    boom = Action("test.fail", "test", "fail")
    ctx = Context(open_host(tmp_path), lambda name, params: be)

    # a new pool's network is undefined again
    acts = pl.plan_put("tenant-d", pf, [pf.vfs[5]], PoolSettings(vlan=9), create=True)
    with pytest.raises(ExecutionFailed) as ei:
        execute(ctx, [*acts, boom])
    assert "tenant-d" not in lab.networks()
    assert [a.op for a in ei.value.result.rolled_back] == ["libvirt_pool.put"]

    # a changed pool gets its old definition back; a new interface is detached again
    execute(ctx, pl.plan_put("tenant-d", pf, [pf.vfs[5]], PoolSettings(vlan=9), create=True))
    before = lab.net("tenant-d")
    acts = pl.plan_put("tenant-d", pf, [pf.vfs[5], pf.vfs[6]], PoolSettings(), create=False)
    acts += pl.plan_attach(domain.name(), "tenant-d", {})
    with pytest.raises(ExecutionFailed):
        execute(ctx, [*acts, boom])
    assert lab.net("tenant-d") == before
    assert lab.conn.networkLookupByName("tenant-d").isActive()
    assert list(network_interfaces(domain.XMLDesc(INACTIVE))) == []
    execute(ctx, pl.plan_delete("tenant-d", force=False))
    assert "tenant-d" not in lab.networks()
    be.close()


def test_profile_pools_apply_export_roundtrip(lab: Lab, domain: Any, tmp_path: Path) -> None:
    vm = domain.name()
    prof = tmp_path / "pools.yaml"
    prof.write_text(
        "version: 1\n"
        "pfs: []\n"
        "pools:\n"
        "  - name: tenant-p\n"
        "    backend: libvirt\n"
        f"    match: {{netdev: {PF}}}\n"
        '    vfs: "4-5"\n'
        "    vlan-id: 30\n"
        "    spoof-check: true\n"
        "attach:\n"
        f"  - {{vm: {vm}, pool: tenant-p, mac-address: '52:54:00:00:0c:01'}}\n"
    )
    try:
        plan = lab.json("plan", str(prof))
        assert plan["changed"] is True and plan["phases"]["pools"] >= 1
        assert plan["phases"]["attach"] == 1 and "tenant-p" not in lab.networks()
        done = lab.json("apply", str(prof))
        assert done["changed"] is True and done["error"] is None
        assert _addrs(lab.virsh_net("tenant-p")) == list(lab.vfs[4:6])
        assert [lab.vf(i)["vlan"] for i in (4, 5)] == [30, 30]
        (iface,) = list(network_interfaces(domain.XMLDesc(INACTIVE)))
        assert (iface.network, iface.mac) == ("tenant-p", "52:54:00:00:0c:01")
        assert lab.json("apply", str(prof))["changed"] is False

        exported = lab.run("export")
        assert exported.returncode == 0, exported.stderr
        assert "tenant-p" in exported.stdout
        r = subprocess.run(
            [sys.executable, "-m", "vfctl", "--root", str(lab.root), "--libvirt-uri",
             lab.daemon.uri, "apply", "-", "--json"],
            input=exported.stdout, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        again = json.loads(r.stdout)
        assert (again["changed"], again["actions"]) == (False, []), again

        bad = tmp_path / "bad.yaml"
        bad.write_text(prof.read_text().replace("pool: tenant-p", "pool: tenant-x"))
        r = lab.run("apply", str(bad))
        assert r.returncode == 2 and "attach[0].pool" in r.stderr and "tenant-x" in r.stderr
    finally:
        lab.run("detach", vm, "--pool", "tenant-p")
        lab.run("pool", "delete", "tenant-p")


def test_recover_undoes_what_a_killed_pool_create_did(lab: Lab) -> None:
    """A run killed after defining the network leaves a journal; `vfctl recover` (a new
    process, ops found by their prefix) undefines it again."""
    from vfctl.journal import Journal
    from vfctl.plan import _run

    be = LibvirtBackend.connect(lab.daemon.uri)
    try:
        pf = next(p for p in discover(open_host(lab.root)).pfs if p.netdev == PF)
        acts = LibvirtPools(be).plan_put("tenant-k", pf, [pf.vfs[7]], PoolSettings(), create=True)
        _run(Context(open_host(lab.root), lambda name, params: be), acts[0])
        assert "tenant-k" in lab.networks()
    finally:
        be.close()
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout
    Journal(open_host(lab.root)).save(
        {"pid": int(dead), "started": 0, "actions": [a.to_record() for a in acts], "done": 1}
    )
    r = lab.run("pool", "create", "other", PF, "vf6")
    assert r.returncode == 4 and "recover" in r.stderr  # nothing runs over the journal
    doc = lab.json("recover")
    assert [a["op"] for a in doc["rolled_back"]] == ["libvirt_pool.put"]
    assert "tenant-k" not in lab.networks()


def test_pool_on_a_down_pf_warns_from_the_discovered_link_state(lab: Lab) -> None:
    """The PF's link state comes from the model's in-use facts (read once at discovery)."""
    from vfctl import sim

    plan = lab.json("pool", "create", "tenant-down", PF, "vf7", "--check")
    assert not any("is down" in w for w in plan["warnings"])
    sim.set_link(lab.root, PF, up=False)
    try:
        plan = lab.json("pool", "create", "tenant-down", PF, "vf7", "--check")
    finally:
        sim.set_link(lab.root, PF, up=True)
    assert any(f"{PF} is down: libvirt refuses" in w for w in plan["warnings"]), plan
