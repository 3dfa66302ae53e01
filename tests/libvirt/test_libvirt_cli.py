"""`vfctl attach/detach/list/show/disable/bind` end to end: the real CLI in a subprocess, a
real isolated libvirtd, and a simulated host whose VFs are the ones attached.

Live attach cannot succeed on this machine (no IOMMU): the tests check that it is refused,
rolled back and explained; the lab (tests/lab/test_lab_libvirt.py) does the real live attach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from libvirtd import Libvirtd

from vfctl.backends.libvirt import LibvirtBackend
from vfctl.backends.libvirt_xml import HostdevInterfaceXml, HostdevXml, pci_devices

pytestmark = pytest.mark.libvirtd

INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any vfctl setting, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VFCTL_")}
    env.update(extra)
    return env


def vfctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfctl", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class SimHost:
    root: Path
    uri: str
    pf: str  # netdev of an igb PF with 4 VFs
    other_pf: str
    vfs: tuple[str, ...]  # the PF's VF addresses, by index

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """vfctl against this host and the test daemon."""
        return vfctl("--root", str(self.root), "--libvirt-uri", self.uri, *args, env=env)

    def json(self, *args: str, rc: int = 0) -> dict[str, Any]:
        r = self.run(*args, "--json")
        assert r.returncode == rc, f"exit {r.returncode}: {r.stderr}"
        doc: dict[str, Any] = json.loads(r.stdout)  # exactly one document on stdout
        return doc

    def vf_json(self, index: int) -> dict[str, Any]:
        vf: dict[str, Any] = self.json("show", self.pf)["vfs"][index]
        return vf

    def numvfs(self) -> int:
        pf_dir = self.root / "sys/class/net" / self.pf / "device"
        return int((pf_dir / "sriov_numvfs").read_text())


@pytest.fixture
def sim(tmp_path: Path, libvirtd: Libvirtd) -> SimHost:
    root = tmp_path / "host"
    r = vfctl("sim", "init", str(root), "--preset", "default")
    assert r.returncode == 0, r.stderr
    listing = json.loads(vfctl("--root", str(root), "list", "--json").stdout)
    igb = [p["netdev"] for p in listing["pfs"] if p["driver"] == "igb"]
    assert len(igb) >= 2, listing
    r = vfctl("--root", str(root), "enable", igb[0], "4")
    assert r.returncode == 0, r.stderr
    pf = json.loads(vfctl("--root", str(root), "show", igb[0], "--json").stdout)
    vfs = tuple(v["address"] for v in pf["vfs"])
    assert len(vfs) == 4
    return SimHost(root, libvirtd.uri, igb[0], igb[1], vfs)


def held(dom: Any, scope: str = "config") -> list[tuple[str, str]]:
    """(element, address) pairs in the domain's XML, read straight from libvirt."""
    return [
        (f.element, f.address)
        for f in pci_devices(dom.XMLDesc(INACTIVE if scope == "config" else 0))
    ]


def devices(dom: Any) -> list[HostdevXml | HostdevInterfaceXml]:
    return [f.device for f in pci_devices(dom.XMLDesc(INACTIVE))]


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---- attach / detach -------------------------------------------------------------------------


def test_config_attach_check_json_idempotent_detach(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    dom = make_domain()
    vm, vf1 = dom.name(), sim.vfs[1]

    plan = sim.json("attach", vm, sim.pf, "vf1", "--check")
    assert plan["changed"] is True and plan["error"] is None
    assert [(a["op"], a["target"]) for a in plan["actions"]] == [("libvirt.attach", f"{vm} {vf1}")]
    assert "(config)" in plan["actions"][0]["detail"]
    assert held(dom) == []  # --check did nothing

    done = sim.json("attach", vm, sim.pf, "vf1")
    # The DESIGN §3 envelope, plus the history id a changing run records (docs/json.md).
    assert set(done) == {"changed", "actions", "rolled_back", "warnings", "error", "history_id"}
    assert done["changed"] is True and done["rolled_back"] == [] and done["error"] is None
    assert done["actions"] == plan["actions"]
    assert held(dom) == [("hostdev", vf1)]
    (dev,) = devices(dom)
    assert isinstance(dev, HostdevXml) and dev.managed is True  # igbvf-bound: libvirt manages

    again = sim.json("attach", vm, sim.pf, vf1)  # the VF by its address this time
    assert (again["changed"], again["actions"]) == (False, [])
    text = sim.run("attach", vm, sim.pf, "1")
    assert text.returncode == 0 and "nothing to do" in text.stdout

    assert sim.json("detach", vm, sim.pf, "vf1", "--check")["changed"] is True
    assert held(dom) == [("hostdev", vf1)]
    gone = sim.json("detach", vm, sim.pf, "vf1")
    assert gone["changed"] is True
    assert [a["op"] for a in gone["actions"]] == ["libvirt.detach"]
    assert held(dom) == []
    assert sim.json("detach", vm, sim.pf, "vf1")["changed"] is False


def test_interface_mode_mac_vlan_and_usage_errors(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    dom = make_domain()
    vm = dom.name()
    mac = "52:54:00:ab:cd:02"
    sim.json("attach", vm, sim.pf, "vf2", "--mode", "interface", "--mac", mac, "--vlan", "42")
    (dev,) = devices(dom)
    assert isinstance(dev, HostdevInterfaceXml)
    assert (dev.mac, dev.vlan_tag, dev.source_address) == (mac, 42, sim.vfs[2])
    # the same again: no change; a different VLAN: refused, --force replaces it
    assert (
        sim.json("attach", vm, sim.pf, "vf2", "--mode", "interface", "--mac", mac)["changed"]
        is False
    )
    r = sim.run("attach", vm, sim.pf, "vf2", "--mode", "interface", "--vlan", "7")
    assert r.returncode == 4, r.stderr
    assert "--force" in one_line_error(r.stderr)
    forced = sim.json("attach", vm, sim.pf, "vf2", "--mode", "interface", "--vlan", "7", "--force")
    assert [a["op"] for a in forced["actions"]] == ["libvirt.detach", "libvirt.attach"]
    (dev,) = devices(dom)
    assert isinstance(dev, HostdevInterfaceXml) and dev.vlan_tag == 7

    for bad in (
        ("--mac", mac),  # MAC/VLAN need --mode interface
        ("--mode", "bridge"),
        ("--mode", "interface", "--mac", "not-a-mac"),
        ("--mode", "interface", "--vlan", "5000"),
    ):
        r = sim.run("attach", vm, sim.pf, "vf3", *bad)
        assert r.returncode == 2, (bad, r.stderr)
        one_line_error(r.stderr)
    assert held(dom) == [("interface", sim.vfs[2])]


def test_live_attach_without_iommu_is_refused_and_rolled_back(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    dom = make_domain(running=True)
    vm = dom.name()
    before = dom.XMLDesc(INACTIVE)
    r = sim.run("attach", vm, sim.pf, "vf1")
    assert r.returncode == 6
    line = one_line_error(r.stderr)
    assert "VIR_ERR_CONFIG_UNSUPPORTED" in line and "(live)" in line
    assert "rolled back" in line and "vfctl doctor" in line
    assert held(dom, "config") == [] and held(dom, "live") == []
    assert dom.XMLDesc(INACTIVE) == before  # the config step was undone, nothing left over

    doc = sim.json("attach", vm, sim.pf, "vf1", rc=6)
    assert doc["changed"] is False
    assert doc["error"]["kind"] == "backend"
    assert [a["op"] for a in doc["actions"]] == ["libvirt.attach", "libvirt.attach"]
    # the failed live step (its undo is a no-op) and the config step, in reverse
    assert [a["detail"].rsplit(" ", 1)[1] for a in doc["rolled_back"]] == ["(live)", "(config)"]
    assert held(dom, "config") == [] and held(dom, "live") == []

    # --config alone is what works on a host without an IOMMU, running domain or not
    assert sim.json("attach", vm, sim.pf, "vf1", "--config")["changed"] is True
    assert held(dom, "config") == [("hostdev", sim.vfs[1])] and held(dom, "live") == []


def test_vf_in_another_domain_refused_force_moves_it(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    a, b = make_domain(), make_domain()
    sim.json("attach", a.name(), sim.pf, "vf0")
    r = sim.run("attach", b.name(), sim.pf, "vf0")
    assert r.returncode == 4
    assert a.name() in one_line_error(r.stderr)
    assert held(a) == [("hostdev", sim.vfs[0])] and held(b) == []

    moved = sim.json("attach", b.name(), sim.pf, "vf0", "--force")
    assert [(x["op"], x["target"]) for x in moved["actions"]] == [
        ("libvirt.detach", f"{a.name()} {sim.vfs[0]}"),
        ("libvirt.attach", f"{b.name()} {sim.vfs[0]}"),
    ]
    assert held(a) == [] and held(b) == [("hostdev", sim.vfs[0])]


def test_vf_held_by_a_qemu_no_domain_names_is_refused(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    """Issue 12 §3: the running truth (an open /dev/vfio/N) counts, whatever configs say."""
    from vfctl.sim import vm as sim_vm

    dom = make_domain()
    assert sim.json("bind", sim.pf, "vf1")["changed"] is True
    group = sim.vf_json(1)["iommu_group"]
    pid = sim_vm.start(sim.root, "libvirt", "elsewhere", [group])
    assert sim.vf_json(1)["held_by"] == {"vm": "elsewhere", "pid": pid, "backend": "libvirt"}
    r = sim.run("attach", dom.name(), sim.pf, "vf1")
    assert r.returncode == 4 and "elsewhere" in one_line_error(r.stderr)
    assert held(dom) == []
    sim_vm.stop(sim.root, "libvirt", "elsewhere")
    assert sim.vf_json(1)["held_by"] is None
    assert sim.json("attach", dom.name(), sim.pf, "vf1")["changed"] is True


def test_unknown_vm_is_not_found(sim: SimHost) -> None:
    for verb in ("attach", "detach"):
        r = sim.run(verb, "no-such-vm", sim.pf, "vf0")
        assert r.returncode == 3
        assert "no-such-vm" in one_line_error(r.stderr)
    doc = sim.json("attach", "no-such-vm", sim.pf, "vf0", rc=3)
    assert doc["error"]["kind"] == "not-found" and doc["changed"] is False


# ---- inventory -------------------------------------------------------------------------------


def test_list_and_show_report_attached_to(sim: SimHost, make_domain: Callable[..., Any]) -> None:
    stopped, running = make_domain(), make_domain(running=True)
    sim.json("attach", stopped.name(), sim.pf, "vf0")
    sim.json("attach", running.name(), sim.pf, "vf3", "--mode", "interface", "--config")

    listing = sim.json("list")
    (pf,) = [p for p in listing["pfs"] if p["netdev"] == sim.pf]
    by_index = {v["index"]: v["attached_to"] for v in pf["vfs"]}
    assert by_index[0] == [
        {
            "backend": "libvirt",
            "vm": stopped.name(),
            "vm_id": stopped.UUIDString(),
            "element": "hostdev",
            "live": False,
            "config": True,
        }
    ]
    assert by_index[3] == [
        {
            "backend": "libvirt",
            "vm": running.name(),
            "vm_id": running.UUIDString(),
            "element": "interface",
            "live": False,  # in the definition only: the running guest does not have it
            "config": True,
        }
    ]
    assert by_index[1] == by_index[2] == []
    assert sim.json("show", sim.pf)["vfs"] == pf["vfs"]
    text = sim.run("show", sim.pf)
    assert text.returncode == 0
    assert f"libvirt:{stopped.name()}" in text.stdout and f"libvirt:{running.name()}" in text.stdout

    # --backend none: the host alone, no libvirt
    r = vfctl("--root", str(sim.root), "--backend", "none", "show", sim.pf, "--json")
    assert r.returncode == 0 and all(v["attached_to"] == [] for v in json.loads(r.stdout)["vfs"])


def test_disable_refused_while_attached_force_allows(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    dom = make_domain()
    sim.json("attach", dom.name(), sim.pf, "vf2")
    r = sim.run("disable", sim.pf)
    assert r.returncode == 4
    line = one_line_error(r.stderr)
    assert sim.vfs[2] in line and dom.name() in line
    assert sim.numvfs() == 4
    assert sim.json("disable", sim.pf, "--check", rc=4)["error"]["kind"] == "refused"

    done = sim.json("disable", sim.pf, "--force")
    assert done["changed"] is True and sim.numvfs() == 0


def test_bind_and_unbind_of_an_attached_vf_refused(
    sim: SimHost, make_domain: Callable[..., Any]
) -> None:
    dom = make_domain()
    vm = dom.name()
    # vf1 is vfio-bound by vfctl first: attach picks managed='no'
    assert sim.json("bind", sim.pf, "vf1")["changed"] is True
    sim.json("attach", vm, sim.pf, "vf1")
    (dev,) = devices(dom)
    assert isinstance(dev, HostdevXml) and dev.managed is False
    r = sim.run("unbind", sim.pf, "vf1")
    assert r.returncode == 4 and vm in one_line_error(r.stderr)
    assert sim.vf_json(1)["driver"] == "vfio-pci"

    # vf0 stays on igbvf and is attached managed: binding it to vfio-pci by hand is refused
    sim.json("attach", vm, sim.pf, "vf0")
    r = sim.run("bind", sim.pf, "vf0")
    assert r.returncode == 4 and vm in one_line_error(r.stderr)
    assert sim.vf_json(0)["driver"] == "igbvf"
    assert sim.json("bind", sim.pf, "vf0", "--force")["changed"] is True
    assert sim.vf_json(0)["driver"] == "vfio-pci"


# ---- hostdev network pools -------------------------------------------------------------------


def test_show_marks_hostdev_network_pool(
    sim: SimHost, backend: LibvirtBackend, make_domain: Callable[..., Any]
) -> None:
    name = f"vfctl-pool-{sim.root.parent.name[-8:]}"
    net = backend.conn.networkDefineXML(
        f"<network><name>{name}</name><forward mode='hostdev' managed='yes'>"
        f"<pf dev='{sim.pf}'/></forward></network>"
    )
    try:
        doc = sim.json("show", sim.pf)
        assert doc["hostdev_network"] == name
        assert [v["hostdev_network"] for v in doc["vfs"]] == [name] * 4
        other = sim.json("show", sim.other_pf)
        assert other["hostdev_network"] is None
        (listed,) = [p for p in sim.json("list")["pfs"] if p["netdev"] == sim.pf]
        assert listed["hostdev_network"] == name
        text = sim.run("show", sim.pf).stdout
        assert f"hostdev network {name!r} pools vf0, vf1, vf2, vf3" in text

        dom = make_domain()
        r = sim.run("attach", dom.name(), sim.pf, "vf1")
        assert r.returncode == 4 and name in one_line_error(r.stderr)
        assert held(dom) == []
        assert sim.json("attach", dom.name(), sim.pf, "vf1", "--force")["changed"] is True
    finally:
        net.undefine()
    # without a backend the key is absent: the host-only JSON is unchanged
    r = vfctl("--root", str(sim.root), "show", sim.pf, "--json")
    assert "hostdev_network" not in json.loads(r.stdout)


# ---- connection and backend choice -----------------------------------------------------------


def test_stopped_daemon_is_a_one_line_backend_error(sim: SimHost, tmp_path: Path) -> None:
    dead = Libvirtd(tmp_path / "dead")
    dead.start()
    dead.stop()
    for args in (("attach", "vm", sim.pf, "vf0"), ("list",), ("show", sim.pf)):
        r = vfctl("--root", str(sim.root), "--libvirt-uri", dead.uri, *args)
        assert r.returncode == 6, (args, r.stderr)
        line = one_line_error(r.stderr)
        assert line.startswith("vfctl: error: libvirt connect ")
        assert "is libvirtd running?" in line and r.stdout == ""
    r = vfctl(
        "--root", str(sim.root), "--libvirt-uri", dead.uri, "attach", "vm", sim.pf, "vf0", "--json"
    )
    assert r.returncode == 6 and json.loads(r.stdout)["error"]["kind"] == "backend"


def test_backend_auto_detection(sim: SimHost, make_domain: Callable[..., Any]) -> None:
    dom = make_domain()
    root = str(sim.root)
    # a simulated host with no URI configured: no VM manager, a usage error
    r = vfctl("--root", root, "attach", dom.name(), sim.pf, "vf0")
    assert r.returncode == 2 and "--backend" in one_line_error(r.stderr)
    # VFCTL_LIBVIRT_URI alone selects libvirt
    env = clean_env(VFCTL_LIBVIRT_URI=sim.uri)
    r = vfctl("--root", root, "attach", dom.name(), sim.pf, "vf0", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert held(dom) == [("hostdev", sim.vfs[0])]
    r = vfctl("--root", root, "show", sim.pf, "--json", env=env)
    assert json.loads(r.stdout)["vfs"][0]["attached_to"][0]["vm"] == dom.name()
    # --backend none wins over the environment
    r = vfctl("--root", root, "--backend", "none", "attach", dom.name(), sim.pf, "vf1", env=env)
    assert r.returncode == 2


PROBE = """
import sys
sys.modules["libvirt"] = None  # any `import libvirt` now raises ImportError
sys.argv = ["vfctl", "--root", sys.argv[1], "list", "--json"]
from vfctl.cli import main
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
loaded = sorted(m for m, mod in sys.modules.items() if "libvirt" in m and mod is not None)
print("LOADED", loaded, file=sys.stderr)
"""


def test_list_on_a_sim_host_does_not_import_libvirt(sim: SimHost) -> None:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(sim.root)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stderr
    assert len(json.loads(r.stdout)["pfs"]) >= 2
