"""VF pools on Proxmox VE: `vfctl pool …` and `attach/detach --pool` against the fake cluster.

Each node is its own simulated host (same hardware, its own state and lock) and its own vfctl
process; all talk to one fake PVE API over HTTPS with an API token, as Ansible forks would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN_NAME, TOKEN_PRIVS, TOKEN_SECRET, TOKEN_USER, Tls, vm
from fakepve import FakePve, Server

from vfctl.backends.proxmox import ProxmoxBackend
from vfctl.backends.pve_client import PveApi, PveSettings
from vfctl.backends.pve_hostpci import parse_map_entry
from vfctl.backends.pve_pool import PvePools
from vfctl.discover import discover
from vfctl.host.open import open_host
from vfctl.plan import Action, Context, ExecutionFailed, execute, op
from vfctl.pools import PoolSettings

PF = "enp1s0f0"
NODES = ("pve1", "pve2", "pve3")
ROUNDS = 20


def vfctl(
    root: Path, node: str, env: dict[str, str], ca: str, *args: str
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VFCTL_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "vfctl", "--root", str(root), "--pve-node", node, "--pve-ca", ca,
         "--backend", "proxmox", *args],
        capture_output=True, text=True, env=full, timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pve-pool") / "host"
    py = [sys.executable, "-m", "vfctl"]
    assert subprocess.run([*py, "sim", "init", str(root)], capture_output=True).returncode == 0
    r = subprocess.run([*py, "--root", str(root), "--backend", "none", "enable", PF, "4"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (root / "etc/pve").mkdir(parents=True)
    return root


class Cluster:
    def __init__(
        self, fake: FakePve, env: dict[str, str], tls: Tls, roots: dict[str, Path]
    ) -> None:
        self.fake, self.env, self.ca, self.roots = fake, env, tls.ca, roots

    def run(self, node: str, *args: str) -> subprocess.CompletedProcess[str]:
        return vfctl(self.roots[node], node, self.env, self.ca, *args)

    def json(self, node: str, *args: str, rc: int = 0) -> dict[str, Any]:
        r = self.run(node, *args, "--json")
        assert r.returncode == rc, f"exit {r.returncode}: {r.stderr}"
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def mapping(self, name: str) -> dict[str, Any] | None:
        m: dict[str, Any] | None = self.fake.read()["mappings"].get(name)
        return m

    def entries(self, name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for raw in (self.mapping(name) or {}).get("map", []):
            e = parse_map_entry(raw)
            out.setdefault(e.node, []).extend(e.path)
        return out

    def config(self, vmid: int) -> dict[str, Any]:
        v = self.fake.read()["vms"][str(vmid)]
        return {**v["config"], **v["pending"]}

    def backend(self, node: str) -> ProxmoxBackend:
        settings = PveSettings(mode="https", node=node, host=self.env["VFCTL_PVE_HOST"],
                               user=TOKEN_USER, token_name=TOKEN_NAME, ca=self.ca)  # fmt: skip
        api = PveApi(settings, {"VFCTL_PVE_TOKEN_VALUE": TOKEN_SECRET})
        return ProxmoxBackend(api, settings, open_host(self.roots[node]))


@pytest.fixture
def cluster(fake: FakePve, server: Server, tls: Tls, template: Path, tmp_path: Path) -> Cluster:
    st = FakePve.initial(list(NODES), tokens={
        f"{TOKEN_USER}!{TOKEN_NAME}": {"secret": TOKEN_SECRET, "privs": TOKEN_PRIVS}})  # fmt: skip
    st["vms"] = {
        "101": vm("pve1", "web", machine="q35"),
        "102": vm("pve1", "db", status="running", machine="q35"),
        "103": vm("pve1", "app", machine="q35"),
        "201": vm("pve2", "far", machine="q35"),
    }
    fake.write(st)
    roots = {}
    for n in NODES:
        roots[n] = tmp_path / n
        shutil.copytree(template, roots[n], symlinks=True)
    env = {
        "VFCTL_PVE_HOST": f"127.0.0.1:{server.port}",
        "VFCTL_PVE_USER": TOKEN_USER,
        "VFCTL_PVE_TOKEN_NAME": TOKEN_NAME,
        "VFCTL_PVE_TOKEN_VALUE": TOKEN_SECRET,
    }
    return Cluster(fake, env, tls, roots)


def vf_addrs(c: Cluster, node: str) -> list[str]:
    pf = next(p for p in discover(open_host(c.roots[node])).pfs if p.netdev == PF)
    return [v.address for v in pf.vfs]


def test_create_merges_nodes_and_is_idempotent(cluster: Cluster) -> None:
    vfs = vf_addrs(cluster, "pve1")
    doc = cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-2", "--vlan", "42",
                       "--spoofchk", "on")  # fmt: skip
    assert doc["changed"] is True and doc["actions"][-1]["op"] == "pve_pool.entries"
    m = cluster.mapping("tenant")
    assert m is not None and m["description"].startswith("vfctl: pool")
    assert cluster.entries("tenant") == {"pve1": vfs[:3]}
    e = parse_map_entry(m["map"][0])  # one entry per VF: node, path, id, iommugroup, subsystem
    assert (e.id, e.iommugroup is not None, e.subsystem_id is not None) == ("8086:10ed", True, True)
    host = json.loads(cluster.run("pve1", "show", PF, "--json").stdout)["vfs"]
    assert [(v["driver"], v["vlan"]) for v in host[:3]] == [("vfio-pci", 42)] * 3
    again = cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-2")
    assert (again["changed"], again["actions"]) == (False, [])

    cluster.json("pve2", "pool", "create", "tenant", PF, "vf1,vf3")
    assert cluster.entries("tenant") == {"pve1": vfs[:3], "pve2": [vfs[1], vfs[3]]}
    cluster.json("pve1", "pool", "remove", "tenant", PF, "vf0")
    assert cluster.entries("tenant") == {"pve1": vfs[1:3], "pve2": [vfs[1], vfs[3]]}
    shown = cluster.json("pve1", "pool", "show", "tenant")
    assert shown["other_nodes"] == {"pve2": 2} and shown["settings"]["vlan"] == 42
    assert [m["state"] for m in shown["members"]] == ["free", "free"]

    cluster.json("pve2", "pool", "delete", "tenant")  # pve2's entries only
    assert cluster.entries("tenant") == {"pve1": vfs[1:3]}
    cluster.json("pve1", "pool", "delete", "tenant")  # the last node's: the mapping goes
    assert cluster.mapping("tenant") is None


def test_concurrent_creates_from_three_nodes_lose_no_entry(cluster: Cluster) -> None:
    vfs = vf_addrs(cluster, "pve1")
    want = {n: vfs[:2] for n in NODES}

    def create(node: str) -> subprocess.CompletedProcess[str]:
        return cluster.run(node, "pool", "create", "shared", PF, "vf0-1", "--vlan", "7")

    with ThreadPoolExecutor(len(NODES)) as pool:
        for i in range(ROUNDS):
            with cluster.fake.edit() as st:
                st["mappings"].pop("shared", None)
                st["log"] = []
            results = list(pool.map(create, NODES))
            for node, r in zip(NODES, results, strict=True):
                assert r.returncode == 0, f"round {i} {node}: {r.stderr}"
            assert cluster.entries("shared") == want, f"round {i}"
            writes = [x for x in cluster.fake.read()["log"] if x["method"] != "GET"]
            assert len(writes) >= len(NODES), f"round {i}: {writes}"


def test_attach_detach_by_pool_and_refusals(cluster: Cluster) -> None:
    cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-1")
    att = cluster.json("pve1", "attach", "101", "--pool", "tenant")
    assert [a["op"] for a in att["actions"]] == ["pve_pool.hostpci_add"]
    assert cluster.config(101)["hostpci0"] == "mapping=tenant,pcie=1"
    assert cluster.json("pve1", "attach", "vm101", "--pool", "tenant")["changed"] is False
    assert cluster.json("pve1", "pool", "show", "tenant")["vms"] == ["vm101"]

    r = cluster.run("pve1", "pool", "delete", "tenant")
    assert r.returncode == 4 and "vm101" in r.stderr and "--force" in r.stderr
    assert cluster.mapping("tenant") is not None

    cluster.json("pve1", "attach", "102", "--pool", "tenant")  # a running VM: pending
    r = cluster.run("pve1", "pool", "delete", "tenant", "--force")
    assert r.returncode == 4 and "running" in r.stderr  # not even --force, under a running VM
    assert cluster.mapping("tenant") is not None and "hostpci0" in cluster.config(101)

    cluster.json("pve1", "detach", "102", "--pool", "tenant")
    gone = cluster.json("pve1", "pool", "delete", "tenant", "--force")
    assert [a["op"] for a in gone["actions"]] == ["pve_pool.hostpci_remove", "pve_pool.entries"]
    assert "hostpci0" not in cluster.config(101) and cluster.mapping("tenant") is None


def test_foreign_mapping_is_never_touched(cluster: Cluster) -> None:
    vfs = vf_addrs(cluster, "pve1")
    theirs = {"map": [f"node=pve1,path={vfs[3]},id=8086:10ed"], "description": "made by hand"}
    with cluster.fake.edit() as st:
        st["mappings"]["theirs"] = theirs
    for args in (
        ("pool", "create", "theirs", PF, "vf3"),
        ("pool", "add", "theirs", PF, "vf2"),
        ("pool", "delete", "theirs", "--force"),
        ("attach", "101", "--pool", "theirs"),
    ):
        r = cluster.run("pve1", *args)
        assert r.returncode in (3, 4), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert cluster.mapping("theirs") == theirs
    assert "hostpci0" not in cluster.config(101)
    assert [p["name"] for p in cluster.json("pve1", "pool", "list")["pools"]] == []


@op("test.pve_fail")
def _fail(ctx: Context, p: Any) -> None:
    raise OSError(5, "injected failure")


def test_rollback_restores_mapping_and_vm(cluster: Cluster, tmp_path: Path) -> None:
    be = cluster.backend("pve1")
    pl = PvePools(be)
    pf = next(p for p in discover(open_host(cluster.roots["pve1"])).pfs if p.netdev == PF)
    ctx = Context(open_host(tmp_path), backend_factory=lambda name, params: be)
    boom = Action("test.pve_fail", "test", "fail")
    other = "node=pve2,path=0000:01:10.0,id=8086:10ed"
    with cluster.fake.edit() as st:  # another node's entry, already there
        st["mappings"]["tenant"] = {"map": [other], "description": "vfctl: pool vlan=5"}
    before = cluster.mapping("tenant")
    acts = pl.plan_put("tenant", pf, list(pf.vfs[:2]), PoolSettings(vlan=5), create=True)
    acts += pl.plan_attach("101", "tenant", {})
    with pytest.raises(ExecutionFailed) as ei:
        execute(ctx, [*acts, boom])
    assert [a.op for a in ei.value.result.rolled_back] == [
        "pve_pool.hostpci_add",
        "pve_pool.entries",
    ]
    assert cluster.mapping("tenant") == before
    assert "hostpci0" not in cluster.config(101)


@pytest.mark.parametrize("race", ["digest", "create"])
def test_a_write_racing_ours_is_merged_not_lost(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    """Another node writes between our read and our write: we re-read and merge, once."""
    be = cluster.backend("pve1")
    pl = PvePools(be)
    pf = next(p for p in discover(open_host(cluster.roots["pve1"])).pfs if p.netdev == PF)
    theirs = "node=pve3,path=0000:01:10.6,id=8086:10ed"
    if race == "digest":
        with cluster.fake.edit() as st:
            st["mappings"]["tenant"] = {"map": [], "description": "vfctl: pool"}
    acts = pl.plan_put("tenant", pf, list(pf.vfs[:2]), PoolSettings(), create=True)
    calls: list[str] = []
    real = be.api.put if race == "digest" else be.api.post

    def racing(path: str, **params: Any) -> Any:
        calls.append(path)
        if len(calls) == 1:  # pve3 gets in first
            with cluster.fake.edit() as st:
                m = st["mappings"].setdefault("tenant", {"description": "vfctl: pool"})
                m["map"] = [*m.get("map", []), theirs]
        return real(path, **params)

    monkeypatch.setattr(be.api, "put" if race == "digest" else "post", racing)
    execute(Context(open_host(tmp_path), backend_factory=lambda name, params: be), acts)
    assert len(calls) == (2 if race == "digest" else 1)  # a create race retries as a PUT
    ours = [v.address for v in pf.vfs[:2]]
    assert cluster.entries("tenant") == {"pve3": ["0000:01:10.6"], "pve1": ours}


def test_doctor_reports_stale_entries_and_sync_refreshes_them(cluster: Cluster) -> None:
    cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-1")
    with cluster.fake.edit() as st:  # as if a firmware update renumbered the IOMMU groups
        m = st["mappings"]["tenant"]
        m["map"] = [x.replace("iommugroup=", "iommugroup=9") for x in m["map"]]
    doc = cluster.json("pve1", "doctor", rc=5)
    stale = [c for c in doc["checks"] if c["check"] == "pool entries"]
    assert [c["status"] for c in stale] == ["fail", "fail"]
    assert "IOMMU group recorded 9" in stale[0]["detail"] and "pool sync" in stale[0]["remedy"]
    assert cluster.json("pve1", "pool", "sync", "tenant")["changed"] is True
    doc = cluster.json("pve1", "doctor", rc=0)
    assert [c["status"] for c in doc["checks"] if c["check"] == "pool entries"] == ["ok"]


def test_profile_pool_and_attach_roundtrip(cluster: Cluster, tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "version: 1\npfs: []\npools:\n"
        f"  - {{name: tenant, backend: proxmox, match: {{netdev: {PF}}}, vfs: [0, 2], vlan-id: 5}}\n"
        "attach:\n  - {vm: 101, pool: tenant}\n"
    )
    done = cluster.json("pve1", "apply", str(prof))
    assert done["changed"] is True and done["phases"]["pools"] >= 1
    vfs = vf_addrs(cluster, "pve1")
    assert cluster.entries("tenant") == {"pve1": [vfs[0], vfs[2]]}
    assert cluster.config(101)["hostpci0"] == "mapping=tenant,pcie=1"
    assert cluster.json("pve1", "apply", str(prof))["changed"] is False
    exported = cluster.run("pve1", "export")
    assert exported.returncode == 0, exported.stderr
    assert "tenant" in exported.stdout and "vm101" in exported.stdout
    again = tmp_path / "exported.yaml"
    again.write_text(exported.stdout)
    doc = cluster.json("pve1", "apply", str(again))
    assert (doc["changed"], doc["actions"]) == (False, []), doc


def test_attach_any_skips_pool_members(cluster: Cluster) -> None:
    vfs = vf_addrs(cluster, "pve1")
    cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-1")
    done = cluster.json("pve1", "attach", "101", PF, "any")
    slot = cluster.config(101)["hostpci0"]
    mapping = slot.split("mapping=")[1].split(",")[0]
    assert cluster.entries(mapping) == {"pve1": [vfs[2]]}, done
    cluster.json("pve1", "attach", "101", PF, "vf3")
    r = cluster.run("pve1", "attach", "101", PF, "any")
    assert r.returncode == 4 and "no free VF" in r.stderr and "in a pool" in r.stderr


def test_started_vms_take_the_first_free_entry_and_hold_it(cluster: Cluster) -> None:
    """The fake starts VMs as qemu-server does (first free entry, reservations, /dev/vfio)."""
    vfs = vf_addrs(cluster, "pve1")
    root = cluster.roots["pve1"]
    cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-1")
    cluster.json("pve1", "attach", "101", "--pool", "tenant")
    cluster.json("pve1", "attach", "103", "--pool", "tenant")
    try:
        cluster.fake.start_vm(101, root)
        members = cluster.json("pve1", "pool", "show", "tenant")["members"]
        assert [(m["address"], m["state"], m["held_by"]) for m in members] == [
            (vfs[0], "held", "vm101"),
            (vfs[1], "free", None),
        ]
        r = cluster.run("pve1", "pool", "remove", "tenant", PF, "vf0")
        assert r.returncode == 4 and "vm101" in r.stderr, r.stderr
        assert cluster.entries("tenant") == {"pve1": vfs[:2]}
        cluster.fake.start_vm(103, root)  # vf0 is taken: the next free entry
        members = cluster.json("pve1", "pool", "show", "tenant")["members"]
        assert [m["held_by"] for m in members] == ["vm101", "vm103"]
        r = cluster.run("pve1", "pool", "delete", "tenant", "--force")
        assert r.returncode == 4 and "running" in r.stderr
    finally:
        for vmid in (101, 103):
            with contextlib.suppress(Exception):
                cluster.fake.stop_vm(vmid, root)


def test_recover_restores_the_mapping_after_a_killed_create(cluster: Cluster) -> None:
    """A run killed after writing this node's entries: `vfctl recover` (a new process) puts
    the mapping back as it was, the other node's entry included."""
    from vfctl.journal import Journal
    from vfctl.plan import _run

    root = cluster.roots["pve1"]
    with cluster.fake.edit() as st:
        st["mappings"]["tenant"] = {
            "map": ["node=pve2,path=0000:01:10.0,id=8086:10ed"],
            "description": "vfctl: pool",
        }
    before = cluster.mapping("tenant")
    be = cluster.backend("pve1")
    pf = next(p for p in discover(open_host(root)).pfs if p.netdev == PF)
    acts = PvePools(be).plan_put("tenant", pf, list(pf.vfs[:2]), PoolSettings(), create=True)
    _run(Context(open_host(root), backend_factory=lambda name, params: be), acts[0])
    assert "pve1" in cluster.entries("tenant")
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout
    Journal(open_host(root)).save(
        {"pid": int(dead), "started": 0, "actions": [a.to_record() for a in acts], "done": 1}
    )
    doc = cluster.json("pve1", "recover")
    assert [a["op"] for a in doc["rolled_back"]] == ["pve_pool.entries"]
    assert cluster.mapping("tenant") == before
