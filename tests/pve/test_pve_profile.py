"""Profiles with ``attach:`` (backend proxmox) on a simulated PVE node against the fake PVE API.

Both connection modes: ``token`` (HTTPS, verified with ``--pve-ca``: cluster mappings) and
``root`` (the fake ``pvesh`` on PATH: raw ``host=``). vfctl runs in this process (typer's
runner, cached backends and the pending log cleared per run). What PVE holds is read from the
fake's state file; what the host did from the simulator's ``writes.log``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirun import Run
from conftest import NODE, TOKEN_NAME, TOKEN_SECRET, TOKEN_USER, Tls
from fakepve import FakePve, Server
from needs import missing
from typer.testing import CliRunner

from vfctl import cli, sim
from vfctl.backends import proxmox
from vfctl.backends.pve_ops import map_matches

PF = "enp1s0f0"  # 82599 in the default preset: VFs at offset 128, stride 2
VF = ("0000:01:10.0", "0000:01:10.2", "0000:01:10.4", "0000:01:10.6")
WRITES = ("POST", "PUT", "DELETE")


@dataclass
class Pve:
    mode: str  # "token" | "root"
    fake: FakePve
    root: Path
    env: dict[str, str | None]
    flags: list[str]

    def __call__(self, *args: str, input: str | None = None) -> Run:
        r = CliRunner().invoke(
            cli.app,
            ["--root", str(self.root), *self.flags, *args],
            env=self.env,
            input=input,
            catch_exceptions=False,
        )
        assert TOKEN_SECRET not in r.stdout + r.stderr
        return Run(r.exit_code, r.stdout, r.stderr)

    def profile(self, text: str) -> str:
        f = self.root.parent / "p.yaml"
        f.write_text(text)
        return str(f)

    def hostpci(self, vmid: int, pending: bool = True) -> dict[str, str]:
        v = self.fake.read()["vms"][str(vmid)]
        cfg = dict(v["config"])
        if pending:
            cfg.update(v["pending"])
            for k in v["pending_delete"]:
                cfg.pop(k, None)
        return {k: x for k, x in cfg.items() if k.startswith("hostpci")}

    def value(self, index: int, extra: str = ",pcie=1") -> str:
        raw = f"host={VF[index]}" if self.mode == "root" else f"mapping=vf-{PF}-{index}"
        return raw + extra

    def log_len(self) -> int:
        return len(self.fake.read()["log"])

    def api_writes(self, since: int) -> list[dict[str, Any]]:
        return [e for e in self.fake.read()["log"][since:] if e["method"] in WRITES]

    def sysfs_writes(self) -> list[str]:
        p = self.root / ".vfctl-sim" / "writes.log"
        return p.read_text().splitlines() if p.exists() else []


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pve-prof") / "host"
    sim.init(root, "default")  # hostname pve1, no VFs yet
    (root / "etc/pve").mkdir(parents=True)
    return root


@pytest.fixture
def simroot(tmp_path: Path, _template: Path) -> Path:
    import shutil

    root = tmp_path / "host"
    shutil.copytree(_template, root, symlinks=True)
    return root


def _env() -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VFCTL_")}
    env["VFCTL_PVE_NODE"] = NODE
    return env


@pytest.fixture
def token_pve(fake: FakePve, server: Server, tls: Tls, simroot: Path) -> Pve:
    env = _env()
    env.update(
        VFCTL_PVE_HOST=f"127.0.0.1:{server.port}",
        VFCTL_PVE_USER=TOKEN_USER,
        VFCTL_PVE_TOKEN_NAME=TOKEN_NAME,
        VFCTL_PVE_TOKEN_VALUE=TOKEN_SECRET,
    )
    return Pve("token", fake, simroot, env, ["--pve-ca", tls.ca])


@pytest.fixture
def root_pve(fake: FakePve, pvesh: Path, simroot: Path) -> Pve:
    if os.geteuid() != 0:
        missing("the pvesh (root@pam) mode needs root")
    env = _env()
    env["PATH"] = os.environ["PATH"]  # with the fake pvesh first
    return Pve("root", fake, simroot, env, [])


@pytest.fixture(params=["token", "root"])
def pve(request: pytest.FixtureRequest) -> Pve:
    return request.getfixturevalue(f"{request.param}_pve")  # type: ignore[no-any-return]


PROFILE = f"""version: 1
host: pve1
defaults: {{drivers-autoprobe: false, driver: vfio-pci}}
pfs:
  - match: {{netdev: {PF}}}
    total-vfs: 4
    vfs:
      - id: 0
        mac-address: auto
        vlan-id: 100
        attach: {{vm: 101, backend: proxmox, pcie: true}}
      - id: 1
        attach: {{vm: db, backend: proxmox}}
      - id: 2
        attach: {{vm: vm101, backend: proxmox, slot: 0, rombar: false}}
      - id: 3
        attach: {{vm: web, backend: proxmox}}
"""


# ---------------------------------------------------------------- apply, again, export


def test_apply_attaches_second_apply_and_export_are_noops(pve: Pve) -> None:
    prof = pve.profile(PROFILE)
    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    plan = pve("plan", prof, "--json")
    assert plan.code == 0, plan.err
    doc = plan.json()
    assert doc["changed"] is True and doc["needs_backend"] == []
    assert doc["phases"]["numvfs"] == 1 and doc["phases"]["bind"] == 4
    phases = [p for p, k in doc["phases"].items() for _ in range(k)]
    assert phases[-doc["phases"]["attach"] :] == ["attach"] * doc["phases"]["attach"]
    adds = [a for a in doc["actions"] if a["op"] == "proxmox.hostpci_add"]
    assert doc["actions"][-1] == adds[-1] and len(adds) == 4
    # the pinned slot is planned first; every VF its own slot, also for one VM in one run
    assert [a["target"] for a in adds] == [
        "vm101 hostpci0",
        "vm101 hostpci1",
        "vm102 hostpci0",
        "vm101 hostpci2",
    ]
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys

    r = pve("apply", prof, "--json")
    assert r.code == 0, r.err
    done = r.json()
    assert done["changed"] is True and done["error"] is None and done["rolled_back"] == []
    assert done["actions"] == doc["actions"]
    assert any("conventional PCI" in w for w in done["warnings"])  # VM 102 is i440fx
    assert "pending" not in done  # no VM runs
    assert pve.hostpci(101) == {
        "hostpci0": pve.value(2, ",pcie=1,rombar=0"),
        "hostpci1": pve.value(0),
        "hostpci2": pve.value(3),
    }
    assert pve.hostpci(102) == {"hostpci0": pve.value(1, "")}
    maps = pve.fake.read()["mappings"]
    if pve.mode == "token":  # mappings for VFs that did not exist when the run was planned
        assert sorted(maps) == [f"vf-{PF}-{i}" for i in range(4)]
        for i in range(4):
            (entry,) = maps[f"vf-{PF}-{i}"]["map"]
            assert f"node={NODE}," in entry and f"path={VF[i]}," in entry
            assert "id=8086:10ed" in entry
    else:
        assert maps == {}
    show = {v["index"]: v for v in pve("show", PF, "--json").json()["vfs"]}
    assert all(show[i]["driver"] == "vfio-pci" for i in range(4))
    assert show[0]["vlan"] == 100
    assert [(a["vm"], a["element"]) for a in show[2]["attached_to"]] == [("vm101", "hostpci0")]

    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    again = pve("apply", prof, "--json")
    assert again.code == 0, again.err
    assert (again.json()["changed"], again.json()["actions"]) == (False, [])
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys

    exp = pve("export", "--json", PF)
    assert exp.code == 0, exp.err
    vfs = {v["id"]: v for v in exp.json()["pfs"][0]["vfs"]}
    assert {i: vfs[i]["attach"] for i in range(4)} == {
        0: {"vm": "vm101", "backend": "proxmox"},
        1: {"vm": "vm102", "backend": "proxmox"},
        2: {"vm": "vm101", "backend": "proxmox"},
        3: {"vm": "vm101", "backend": "proxmox"},
    }
    n_api = pve.log_len()
    r = pve("apply", "-", "--json", input=pve("export").out)
    assert r.code == 0, r.out + r.err
    assert (r.json()["changed"], r.json()["actions"]) == (False, [])
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys


def test_running_vm_change_is_pending_and_reported(pve: Pve) -> None:
    with pve.fake.edit() as st:
        st["vms"]["101"]["status"] = "running"
    prof = pve.profile(
        f"version: 1\npfs:\n  - match: {{netdev: {PF}}}\n    total-vfs: 2\n    vfs:\n"
        "      - {id: 1, driver: vfio-pci, attach: {vm: 101, backend: proxmox}}\n"
    )
    r = pve("apply", prof, "--json")
    assert r.code == 0, r.err
    doc = r.json()
    value = f"host={VF[1]},pcie=1" if pve.mode == "root" else f"mapping=vf-{PF}-1,pcie=1"
    assert doc["pending"] == [
        {"vm": 101, "node": NODE, "key": "hostpci0", "pending": value, "delete": False}
    ]
    assert any(f"pending hostpci0={value}" in w for w in doc["warnings"])
    assert any("does not hot-plug" in w for w in doc["backend_warnings"])
    assert pve.hostpci(101, pending=False) == {} and pve.hostpci(101) == {"hostpci0": value}

    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    again = pve("apply", prof, "--json")
    assert again.code == 0, again.err
    assert again.json()["changed"] is False and "pending" not in again.json()
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys


# ---------------------------------------------------------------- refusals


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("attach", "code", "fragments"),
    [
        (
            "{vm: 102, backend: proxmox}",
            4,
            ["already in VM 101", "hostpci0", "detach the VF where it is"],
        ),
        ("{vm: far, backend: proxmox}", 4, ["103", "pve2", NODE]),
        ("{vm: 999, backend: proxmox}", 3, ["'999' not found"]),
        ("{vm: db, backend: proxmox, pcie: true}", 2, ["q35", "102"]),
    ],
)
def test_refusals_change_nothing(
    token_pve: Pve, attach: str, code: int, fragments: list[str]
) -> None:
    pve = token_pve
    assert pve("enable", PF, "2").code == 0
    if "102" in attach:
        assert pve("attach", "101", PF, "vf1").code == 0  # VF1 is in VM 101 already
    prof = pve.profile(
        f"version: 1\npfs:\n  - match: {{netdev: {PF}}}\n    total-vfs: 2\n    vfs:\n"
        f"      - id: 0\n        vlan-id: 7\n      - id: 1\n        attach: {attach}\n"
    )
    before = {v: pve.hostpci(v) for v in (101, 102, 103)}
    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    for cmd in ("plan", "apply"):
        r = pve(cmd, prof, "--json")
        assert r.code == code, r.out + r.err
        msg = r.json()["error"]["message"]
        assert msg.startswith(f"{prof}:9:17: pfs[0].vfs[1].attach: "), msg
        line = _one_line(r.err)
        for f in fragments:
            assert f in line, (f, line)
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys
    assert {v: pve.hostpci(v) for v in (101, 102, 103)} == before


def test_a_vf_bound_for_a_vm_but_in_another_is_refused_by_the_host_phase(root_pve: Pve) -> None:
    pve = root_pve
    assert pve("enable", PF, "2").code == 0
    assert pve("attach", "102", PF, "vf0").code == 0
    prof = pve.profile(
        f"version: 1\npfs:\n  - match: {{netdev: {PF}}}\n    total-vfs: 2\n    vfs:\n"
        "      - {id: 0, driver: vfio-pci, attach: {vm: 101, backend: proxmox}}\n"
    )
    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    r = pve("apply", prof)
    assert r.code == 4, r.err
    assert "vm102" in _one_line(r.err) and VF[0] in r.err
    assert pve.api_writes(n_api) == [] and len(pve.sysfs_writes()) == n_sys
    assert pve.hostpci(101) == {} and pve.hostpci(102) == {"hostpci0": f"host={VF[0]}"}


def test_two_vfs_in_one_slot_is_a_profile_error(token_pve: Pve) -> None:
    pve = token_pve
    prof = pve.profile(
        f"version: 1\npfs:\n  - match: {{netdev: {PF}}}\n    total-vfs: 4\n    vfs:\n"
        "      - id: 0\n        attach: {vm: 101, backend: proxmox, slot: 2}\n"
        "      - id: 1\n        attach: {vm: vm101, backend: proxmox, slot: 2}\n"
        '      - id: "2-3"\n        attach: {vm: db, backend: proxmox, slot: 5}\n'
    )
    n_api, n_sys = pve.log_len(), len(pve.sysfs_writes())
    r = pve("apply", prof, "--json")
    assert r.code == 2, r.out + r.err
    doc = r.json()
    assert [(e["line"], e["column"], e["path"]) for e in doc["errors"]] == [
        (9, 53, "pfs[0].vfs[1].attach.slot"),
        (11, 50, "pfs[0].vfs[2].attach.slot"),
    ]
    assert "two VFs attached to slot 2 of VM vm101 (the other at line 7)" in r.err
    assert f"{prof}:9:53:" in r.err and f"{prof}:11:50:" in r.err
    assert "2 VFs cannot share one slot" in r.err
    assert pve.log_len() == n_api and len(pve.sysfs_writes()) == n_sys  # not even a read


def test_failed_attach_rolls_back_host_part_and_mappings(token_pve: Pve) -> None:
    pve = token_pve
    with pve.fake.edit() as st:  # the token may create mappings but not edit VM hardware
        st["tokens"][f"{TOKEN_USER}!{TOKEN_NAME}"]["privs"].remove("VM.Config.HWType")
    exported = pve("export").out
    prof = pve.profile(PROFILE)
    r = pve("apply", prof, "--json")
    assert r.code == 6, r.out + r.err
    doc = r.json()
    assert doc["error"]["kind"] == "backend" and "VM.Config.HWType" in doc["error"]["message"]
    undone = {a["op"] for a in doc["rolled_back"]}
    assert {"proxmox.mapping_put", "pci.driver", "netlink.vf", "sriov.numvfs"} <= undone
    assert pve("export").out == exported
    assert pve.fake.read()["mappings"] == {}
    assert all(pve.hostpci(v) == {} for v in (101, 102))
    assert not (pve.root / "run/vfctl/journal.json").exists()


# ---------------------------------------------------------------- mapping entries completed at execution


def _sysfs_facts(root: Path, addr: str) -> tuple[int, str]:
    """The iommu group and subsystem id the (simulated) kernel gave the VF, read independently."""
    d = root / "sys/bus/pci/devices" / addr
    group = int(os.path.basename(os.readlink(d / "iommu_group")))
    sv, sd = (
        (d / f).read_text().strip().lower().removeprefix("0x")
        for f in ("subsystem_vendor", "subsystem_device")
    )
    return group, f"{sv:0>4}:{sd:0>4}"


def _entry(pve: Pve, mid: str) -> Any:
    from vfctl.backends.pve_hostpci import parse_map_entry

    (raw,) = pve.fake.read()["mappings"][mid]["map"]
    return parse_map_entry(raw)


def test_token_apply_that_creates_the_vfs_writes_complete_mapping_entries(token_pve: Pve) -> None:
    pve = token_pve
    prof = pve.profile(PROFILE)
    plan = pve("plan", prof, "--json")
    assert plan.code == 0, plan.err
    puts = [a for a in plan.json()["actions"] if a["op"] == "proxmox.mapping_put"]
    assert len(puts) == 4  # planned before the VFs exist: the host cannot tell yet
    assert all("read at execution" in a["detail"] for a in puts), puts
    r = pve("apply", prof, "--json")
    assert r.code == 0, r.err
    groups = set()
    for i in range(4):
        e = _entry(pve, f"vf-{PF}-{i}")
        group, subsys = _sysfs_facts(pve.root, VF[i])
        assert (e.node, e.path, e.id) == (NODE, (VF[i],), "8086:10ed")
        assert (e.iommugroup, e.subsystem_id) == (group, subsys)
        groups.add(group)
    assert len(groups) == 4  # each VF its own group: the values are per VF, not one constant

    n_api = pve.log_len()
    again = pve("apply", prof, "--json")
    assert again.code == 0, again.err
    assert (again.json()["changed"], again.json()["actions"]) == (False, [])
    assert pve.api_writes(n_api) == []


def test_rollback_deletes_the_completed_mappings_it_created(token_pve: Pve) -> None:
    pve = token_pve
    with pve.fake.edit() as st:  # mappings are written, then the first hostpci write fails
        st["tokens"][f"{TOKEN_USER}!{TOKEN_NAME}"]["privs"].remove("VM.Config.HWType")
    n_api = pve.log_len()
    r = pve("apply", pve.profile(PROFILE), "--json")
    assert r.code == 6, r.out + r.err
    posts = [e for e in pve.api_writes(n_api) if e["method"] == "POST"]
    assert posts  # each VF's mapping is written just before its hostpci slot: the first fails
    for e in posts:  # what was written was complete, i.e. not what the plan's undo expected
        assert "iommugroup=" in str(e["params"]["map"]) and "subsystem-id=" in str(
            e["params"]["map"]
        )
    deletes = [e["path"] for e in pve.api_writes(n_api) if e["method"] == "DELETE"]
    assert sorted(deletes) == sorted(f"/cluster/mapping/pci/{e['params']['id']}" for e in posts)
    assert pve.fake.read()["mappings"] == {}
    assert not any("not deleting" in w for w in r.json()["warnings"])


def test_next_apply_completes_an_old_incomplete_vfctl_mapping(token_pve: Pve) -> None:
    pve = token_pve
    prof = pve.profile(PROFILE)
    assert pve("apply", prof).code == 0
    with pve.fake.edit() as st:  # as an older vfctl left them: no iommugroup / subsystem-id
        for i in (0, 1):
            m = st["mappings"][f"vf-{PF}-{i}"]
            m["map"] = [f"node={NODE},path={VF[i]},id=8086:10ed"]
        st["mappings"][f"vf-{PF}-1"]["description"] = "made by hand"  # not vfctl's: left alone
    plan = pve("plan", prof, "--json")
    assert plan.code == 0, plan.err
    acts = plan.json()["actions"]
    assert [(a["op"], a["target"]) for a in acts] == [("proxmox.mapping_put", f"mapping vf-{PF}-0")]
    n_api = pve.log_len()
    r = pve("apply", prof, "--json")
    assert r.code == 0, r.err
    assert r.json()["changed"] is True
    writes = pve.api_writes(n_api)
    assert [(w["method"], w["path"]) for w in writes] == [
        ("PUT", f"/cluster/mapping/pci/vf-{PF}-0")
    ]
    e = _entry(pve, f"vf-{PF}-0")
    assert (e.iommugroup, e.subsystem_id) == _sysfs_facts(pve.root, VF[0])
    assert (e.node, e.path, e.id) == (NODE, (VF[0],), "8086:10ed")
    assert _entry(pve, f"vf-{PF}-1").iommugroup is None
    n_api = pve.log_len()
    again = pve("apply", prof, "--json")
    assert (again.code, again.json()["changed"]) == (0, False)
    assert pve.api_writes(n_api) == []


def test_undo_accepts_only_the_fields_the_plan_left_out(
    token_backend: proxmox.ProxmoxBackend,
) -> None:
    be, a = token_backend, "0000:03:10.2"
    planned = [f"node={NODE},path={a},id=8086:10ed"]
    other = f"node=pve2,path={a},id=8086:10ed"
    full = [f"node={NODE},path={a},id=8086:10ed,iommugroup=41,subsystem-id=8086:000c"]
    assert map_matches(be.node, full, planned, a)
    assert map_matches(be.node, [other, *full], [other, *planned], a)
    assert not map_matches(be.node, full, planned, None)  # no fill recorded: exact only
    assert not map_matches(be.node, full, planned, "0000:03:10.4")
    moved = [f"node={NODE},path=0000:03:10.4,id=8086:10ed,iommugroup=41"]
    assert not map_matches(be.node, moved, planned, a)
    half = [f"node={NODE},path={a},id=8086:10ed,iommugroup=41"]
    assert map_matches(be.node, full, half, a)  # the plan knew the group, not the subsystem id
    assert not map_matches(be.node, half, [half[0].replace("=41", "=42")], a)
    assert not map_matches(be.node, [f"node=pve2,path={a},id=8086:10ed,iommugroup=3"], [other], a)
