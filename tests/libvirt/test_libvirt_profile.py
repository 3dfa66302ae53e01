"""Profiles with ``attach:`` against a real isolated libvirtd and a simulated host.

``vfctl --root SIM --libvirt-uri URI plan/apply/export`` run in this process (typer's runner,
backend cache cleared per run, so each run connects afresh like a new process). What libvirt
holds is read straight from the domain XML; what the host did from the simulator's
``writes.log`` (one line per sysfs/netlink write).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirun import Run
from libvirtd import Libvirtd
from typer.testing import CliRunner

from vfctl import cli
from vfctl import sim as simhost
from vfctl.backends.libvirt_xml import HostdevInterfaceXml, HostdevXml, pci_devices

pytestmark = pytest.mark.libvirtd

INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE
PF = "enp2s0f0"  # igb 82576 in the default preset: 7 VFs, offset 128, stride 2
VF = ("0000:02:10.0", "0000:02:10.2", "0000:02:10.4", "0000:02:10.6")
MAC1 = "52:54:00:aa:00:01"


@dataclass
class Host:
    root: Path
    uri: str

    def __call__(self, *args: str, input: str | None = None) -> Run:
        r = CliRunner().invoke(
            cli.app,
            ["--root", str(self.root), "--libvirt-uri", self.uri, *args],
            input=input,
            catch_exceptions=False,
        )
        return Run(r.exit_code, r.stdout, r.stderr)

    def writes(self) -> list[str]:
        p = self.root / ".vfctl-sim" / "writes.log"
        return p.read_text().splitlines() if p.exists() else []

    def vfs(self) -> dict[int, dict[str, Any]]:
        r = self("show", PF, "--json")
        assert r.code == 0, r.err
        return {v["index"]: v for v in r.json()["vfs"]}

    def profile(self, text: str, name: str = "p.yaml") -> str:
        f = self.root.parent / name
        f.write_text(text)
        return str(f)


@pytest.fixture
def host(tmp_path: Path, libvirtd: Libvirtd) -> Host:
    root = tmp_path / "host"
    simhost.init(root, "default")
    return Host(root, libvirtd.uri)


def xml(dom: Any) -> str:
    return str(dom.XMLDesc(INACTIVE))


def held(dom: Any, scope: str = "config") -> list[tuple[str, str]]:
    return [
        (f.element, f.address)
        for f in pci_devices(dom.XMLDesc(INACTIVE if scope == "config" else 0))
    ]


def device(dom: Any) -> HostdevXml | HostdevInterfaceXml:
    (found,) = pci_devices(xml(dom))
    return found.device


def profile_text(hostdev_vm: str, iface_vm: str, extra_vf: str = "") -> str:
    """VF0 to vfio-pci and a <hostdev>; VF1 MAC/VLAN and an <interface type='hostdev'>."""
    return f"""version: 1
pfs:
  - match: {{netdev: {PF}}}
    total-vfs: 4
    vfs:
      - id: 0
        driver: vfio-pci
        attach: {{vm: {hostdev_vm}, backend: libvirt, mode: hostdev}}
      - id: 1
        mac-address: "{MAC1}"
        vlan-id: 42
        attach: {{vm: {iface_vm}, backend: libvirt, mode: interface}}
{extra_vf}"""


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- apply, and apply again


def test_apply_attaches_config_then_second_apply_changes_nothing(
    host: Host, make_domain: Callable[..., Any]
) -> None:
    d1, d2, d3 = make_domain(), make_domain(), make_domain()
    extra = (
        "      - id: 2\n        driver: vfio-pci\n"
        f"        attach: {{vm: {d3.name()}, backend: libvirt, managed: true}}\n"
    )
    prof = host.profile(profile_text(d1.name(), d2.name(), extra))
    n0 = len(host.writes())

    plan = host("plan", prof, "--json")
    assert plan.code == 0, plan.err
    doc = plan.json()
    assert doc["changed"] is True and doc["needs_backend"] == []
    assert doc["phases"] == {"autoprobe": 0, "numvfs": 1, "settings": 2, "bind": 2, "attach": 3}
    ops = [a["op"] for a in doc["actions"]]
    assert ops[-3:] == ["libvirt.attach"] * 3 and "libvirt.attach" not in ops[:-3]
    assert [a["target"] for a in doc["actions"][-3:]] == [
        f"{d1.name()} {VF[0]}",
        f"{d2.name()} {VF[1]}",
        f"{d3.name()} {VF[2]}",
    ]
    assert all(a["detail"].endswith("(config)") for a in doc["actions"][-3:])
    text = host("plan", prof)
    assert text.code == 0 and text.out.rstrip().splitlines()[-2].count("libvirt.attach") == 1
    assert len(host.writes()) == n0 and held(d1) == held(d2) == held(d3) == []

    r = host("apply", prof, "--json")
    assert r.code == 0, r.err
    done = r.json()
    assert done["changed"] is True and done["error"] is None and done["rolled_back"] == []
    assert done["actions"] == doc["actions"]
    assert host.writes()[n0:] and all(w.endswith("\tok") for w in host.writes()[n0:])

    # d1: plain hostdev; managed='no' because this profile binds VF0 to vfio-pci itself
    assert held(d1) == [("hostdev", VF[0])]
    dev1 = device(d1)
    assert isinstance(dev1, HostdevXml) and dev1.managed is False
    # d2: interface with the profile's MAC and VLAN; managed='yes' (VF1 keeps its host driver)
    assert held(d2) == [("interface", VF[1])]
    dev2 = device(d2)
    assert isinstance(dev2, HostdevInterfaceXml)
    assert (dev2.mac, dev2.vlan_tag, dev2.managed) == (MAC1, 42, True)
    # d3: managed given explicitly wins over the vfio-pci rule
    dev3 = device(d3)
    assert isinstance(dev3, HostdevXml) and dev3.managed is True
    vfs = host.vfs()
    assert vfs[0]["driver"] == vfs[2]["driver"] == "vfio-pci"
    assert (vfs[1]["mac"], vfs[1]["vlan"]) == (MAC1, 42)
    assert [a["vm"] for a in vfs[0]["attached_to"]] == [d1.name()]
    assert [(a["element"], a["config"], a["live"]) for a in vfs[1]["attached_to"]] == [
        ("interface", True, False)
    ]

    before = [xml(d) for d in (d1, d2, d3)]
    n1 = len(host.writes())
    again = host("apply", prof, "--json")
    assert again.code == 0, again.err
    assert (again.json()["changed"], again.json()["actions"]) == (False, [])
    assert host.writes()[n1:] == []  # zero sysfs/netlink writes
    assert [xml(d) for d in (d1, d2, d3)] == before  # and no libvirt change
    assert host("plan", prof, "--json").json()["changed"] is False
    diff = host("apply", prof, "--check", "--diff", "--json").json()["diff"]
    assert diff["before"] == diff["after"] and "mode: interface" in diff["after"]


# ---------------------------------------------------------------- export


def test_export_includes_attach_and_export_apply_is_a_noop(
    host: Host, make_domain: Callable[..., Any]
) -> None:
    d1, d2, d3 = make_domain(), make_domain(), make_domain()
    assert host("apply", host.profile(profile_text(d1.name(), d2.name()))).code == 0
    # VF2: attached by hand as an interface with its own MAC; its host MAC stays unset
    r = host("attach", d3.name(), PF, "vf2", "--mode", "interface", "--mac", "52:54:00:aa:00:02")
    assert r.code == 0, r.err

    exp = host("export", "--json", PF)
    assert exp.code == 0, exp.err
    vfs = {v["id"]: v for v in exp.json()["pfs"][0]["vfs"]}
    assert vfs[0]["attach"] == {"vm": d1.name(), "backend": "libvirt", "mode": "hostdev"}
    assert vfs[0]["driver"] == "vfio-pci"
    assert vfs[1]["attach"] == {"vm": d2.name(), "backend": "libvirt", "mode": "interface"}
    assert (vfs[1]["mac-address"], vfs[1]["vlan-id"]) == (MAC1, 42)
    assert vfs[2]["attach"] == {"vm": d3.name(), "backend": "libvirt", "mode": "interface"}
    assert "mac-address" not in vfs[2]  # a zero MAC is left out
    assert "attach" not in vfs.get(3, {})

    yaml_text = host("export").out
    before = [xml(d) for d in (d1, d2, d3)]
    n = len(host.writes())
    for text in (yaml_text, exp.out):  # YAML and JSON (JSON is YAML) both apply as no-ops
        r = host("apply", "-", "--json", input=text)
        assert r.code == 0, r.out + r.err
        assert (r.json()["changed"], r.json()["actions"]) == (False, [])
    assert host.writes()[n:] == [] and [xml(d) for d in (d1, d2, d3)] == before

    # the one case export cannot round-trip: a host MAC that differs from the interface's own
    # (libvirt programs the interface's MAC at domain start); apply refuses, changes nothing
    set_ = host("set", PF, "vf2", "--mac", "52:54:00:aa:00:99")
    assert set_.code == 0, set_.err
    text2 = host("export").out
    n = len(host.writes())
    r = host("apply", "-", input=text2)
    assert r.code == 4, r.err
    line = one_line(r.err)
    assert "<stdin>:" in line and "attach" in line and d3.name() in line and VF[2] in line
    assert host.writes()[n:] == [] and [xml(d) for d in (d1, d2, d3)] == before


# ---------------------------------------------------------------- refusals and rollback


@pytest.mark.parametrize("index", [0, 1])
def test_vf_attached_elsewhere_is_refused_nothing_changed(
    host: Host, make_domain: Callable[..., Any], index: int
) -> None:
    """VF0 (the profile rebinds it): the host phase refuses; VF1 (MAC/VLAN only): the attach."""
    d1, d2, other = make_domain(), make_domain(), make_domain()
    assert host("enable", PF, "4").code == 0
    assert host("attach", other.name(), PF, f"vf{index}").code == 0
    prof = host.profile(profile_text(d1.name(), d2.name()))
    doms = (d1, d2, other)
    before = [xml(d) for d in doms]
    n = len(host.writes())
    for cmd in ("plan", "apply"):
        r = host(cmd, prof, "--json")
        assert r.code == 4, (cmd, r.out, r.err)
        doc = r.json()
        assert doc["changed"] is False and doc["error"]["kind"] == "refused"
        msg = doc["error"]["message"]
        assert other.name() in msg and VF[index] in msg
        one_line(r.err)
        if index == 1:  # located at the VF's attach key; the hint: profiles never move a VF
            assert msg.startswith(f"{prof}:12:17: pfs[0].vfs[1].attach: "), msg
            assert "detach the VF where it is" in r.err
    assert host.writes()[n:] == []
    assert [xml(d) for d in doms] == before
    assert host.vfs()[1]["mac"] != MAC1  # the host part did not run either


def test_live_attach_failure_rolls_back_the_host_part(
    host: Host, make_domain: Callable[..., Any]
) -> None:
    running, d2 = make_domain(running=True), make_domain()
    prof = host.profile(profile_text(running.name(), d2.name()))
    exported = host("export").out
    before = [xml(running), xml(d2)]
    live_before = running.XMLDesc(0)
    r = host("apply", prof, "--json")
    assert r.code == 6, r.out + r.err
    doc = r.json()
    assert doc["changed"] is False and doc["error"]["kind"] == "backend"
    msg = doc["error"]["message"]
    assert "VIR_ERR_CONFIG_UNSUPPORTED" in msg and "(live)" in msg
    undone = {a["op"] for a in doc["rolled_back"]}
    # the config attach, the interface attach, the binding, the MAC/VLAN and numvfs: all undone
    assert {"libvirt.attach", "pci.driver", "netlink.vf", "sriov.numvfs"} <= undone
    assert host("export").out == exported  # the host is as it was (0 VFs, same settings)
    assert [xml(running), xml(d2)] == before and held(running, "live") == []
    assert running.XMLDesc(0) == live_before
    assert not (host.root / "run/vfctl/journal.json").exists()
    assert "vfctl doctor" in r.err


def test_libvirt_not_reachable_exits_6_before_anything(host: Host, tmp_path: Path) -> None:
    """A configured libvirt that does not answer: the in-use checks need it, so even ``plan``
    exits 6; ``--backend none --no-attach`` applies the host part on purpose."""
    prof = host.profile(profile_text("d1", "d2"))
    gone = Host(host.root, f"qemu:///system?socket={tmp_path}/no-such-sock")
    n = len(host.writes())
    for cmd in ("plan", "apply"):
        r = gone(cmd, prof)
        assert r.code == 6, r.err
        assert "VIR_ERR_SYSTEM_ERROR" in one_line(r.err)
    assert len(host.writes()) == n
    none = gone("--backend", "none", "plan", prof, "--json")
    assert none.code == 0, none.err
    assert {x["backend"] for x in none.json()["needs_backend"]} == {"libvirt"}
    assert gone("--backend", "none", "apply", prof).code == 2
    assert len(host.writes()) == n
    h = gone("--backend", "none", "apply", prof, "--no-attach", "--json")
    assert h.code == 0 and h.json()["changed"] is True and len(host.writes()) > n
