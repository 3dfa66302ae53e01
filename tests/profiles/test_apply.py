"""plan/apply/export on simulated hosts: idempotence counted in writes, round trips, refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from profhelp import PROFILES, run_cli, vfctl, writes

DEMO = str(PROFILES / "demo.yaml")
PRESET_PROFILES = {
    "default": "sim-default.yaml",
    "minimal": "sim-minimal.yaml",
    "lab": "sim-lab.yaml",
}
Sim = Callable[[str], Path]


def show(root: Path) -> dict[str, dict[str, object]]:
    r = vfctl(root, "list", "--json")
    assert r.code == 0, r.err
    return {p["address"]: p for p in r.json()["pfs"]}


def test_apply_twice_second_run_makes_zero_writes(sim: Sim) -> None:
    root = sim("default")
    before = len(writes(root))
    r1 = vfctl(root, "apply", "--json", DEMO)
    assert r1.code == 0, r1.out + r1.err
    doc = r1.json()
    assert doc["changed"] is True and doc["error"] is None
    first = writes(root)[before:]
    assert first and all(line.endswith("\tok") for line in first)
    ops = [a["op"] for a in doc["actions"]]
    # phases in order: numvfs before netlink settings before driver binding
    assert ops.index("sriov.numvfs") < ops.index("netlink.vf") < ops.index("pci.driver")
    pfs = show(root)
    pf = pfs["0000:01:00.0"]
    assert pf["num_vfs"] == 8
    vfs = {v["index"]: v for v in pf["vfs"]}  # type: ignore[attr-defined]
    assert vfs[0]["driver"] == vfs[1]["driver"] == "vfio-pci"
    assert vfs[0]["vlan"] == 100 and vfs[2]["vlan"] == 200 and vfs[2]["qos"] == 3
    assert vfs[2]["mac"] == "02:00:00:00:10:02" and vfs[2]["max_tx_rate"] == 1000
    assert vfs[7]["trust"] is True
    assert vfs[0]["mac"] != vfs[1]["mac"] and int(vfs[0]["mac"][:2], 16) & 2
    assert pfs["0000:02:00.1"]["num_vfs"] == 2

    n = len(writes(root))
    r2 = vfctl(root, "apply", "--json", DEMO)
    assert r2.code == 0, r2.err
    assert r2.json()["changed"] is False and r2.json()["actions"] == []
    assert len(writes(root)) == n, writes(root)[n:]


def test_plan_and_check_write_nothing_and_exit_zero(sim: Sim) -> None:
    root = sim("default")
    n = len(writes(root))
    p = vfctl(root, "plan", "--json", DEMO)
    assert p.code == 0 and p.json()["changed"] is True
    assert p.json()["phases"]["numvfs"] == 2
    c = vfctl(root, "apply", "--check", "--json", DEMO)
    assert c.code == 0 and c.json()["actions"] == p.json()["actions"]
    assert len(writes(root)) == n
    assert vfctl(root, "apply", DEMO).code == 0
    p2 = vfctl(root, "plan", "--json", DEMO)
    assert p2.code == 0 and p2.json()["changed"] is False
    text = vfctl(root, "plan", DEMO)
    assert text.code == 0 and "nothing to do" in text.out


@pytest.mark.parametrize("preset", sorted(PRESET_PROFILES))
def test_export_apply_round_trip(sim: Sim, preset: str) -> None:
    root = sim(preset)
    for stage in ("fresh", "after profile"):
        if stage == "after profile":
            r = vfctl(root, "apply", str(PROFILES / PRESET_PROFILES[preset]))
            assert r.code == 0, r.err
        exported = vfctl(root, "export")
        assert exported.code == 0, exported.err
        n = len(writes(root))
        r = vfctl(root, "apply", "--json", "-", input=exported.out)
        assert r.code == 0, r.out + r.err
        assert r.json()["changed"] is False, (stage, r.json()["actions"])
        assert len(writes(root)) == n


def test_export_pipe_through_real_processes(sim: Sim) -> None:
    root = sim("minimal")
    assert vfctl(root, "apply", str(PROFILES / "sim-minimal.yaml")).code == 0
    env = {"VFCTL_ROOT": str(root)}
    exp = run_cli("export", env=env)
    assert exp.returncode == 0 and "total-vfs: 4" in exp.stdout
    n = len(writes(root))
    r = run_cli("apply", "--json", "-", env=env, input=exp.stdout)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] is False and len(writes(root)) == n


def test_export_selected_pf_only(sim: Sim) -> None:
    root = sim("default")
    r = vfctl(root, "export", "--json", "enp2s0f0")
    assert r.code == 0
    assert [p["match"] for p in r.json()["pfs"]] == [{"pci": "0000:02:00.0"}]


def _bad_host_case(root: Path, tmp: Path, text: str) -> tuple[int, str, dict[str, object]]:
    f = tmp / "p.yaml"
    f.write_text(text)
    n = len(writes(root))
    r = vfctl(root, "apply", "--json", str(f))
    assert len(writes(root)) == n
    return r.code, r.err, r.json()


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("  - match: {netdev: eth9}\n", 3, "unknown PF: no SR-IOV PF named 'eth9'"),
        ('  - match: {vendor: "8086", device: "10fb", index: 2}\n', 3, "number 2"),
        ("  - match: {netdev: enp1s0f0}\n    total-vfs: 64\n", 4, "at most 63 VFs"),
        (
            "  - match: {netdev: enp1s0f0}\n    vfs:\n      - id: 0\n        trust: true\n",
            5,
            "out of range for enp1s0f0: it has 0",
        ),
        ('  - match: {netdev: enp1s0f0}\n  - match: {pci: "01:00.0"}\n', 4, "already matched"),
    ],
)
def test_host_level_problems_exit_2_located_nothing_written(
    sim: Sim, tmp_path: Path, body: str, line: int, fragment: str
) -> None:
    root = sim("default")
    code, err, doc = _bad_host_case(root, tmp_path, "version: 1\npfs:\n" + body)
    assert code == 2, err
    errors = doc["errors"]
    assert isinstance(errors, list) and fragment in errors[0]["message"]
    assert errors[0]["line"] == line and errors[0]["file"].endswith("p.yaml")
    assert f"p.yaml:{line}:" in err


def test_schema_problems_exit_2_before_touching_host(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("version: 1\npfs:\n  - match: {netdev: eth2}\n    total-vfs: x\n    foo: 1\n")
    r = vfctl(tmp_path / "no-such-root", "apply", str(f))
    assert r.code == 2
    lines = [x for x in r.err.splitlines() if x.startswith("vfctl: error: ")]
    assert len(lines) == 2 and "bad.yaml:4:16: pfs[0].total-vfs" in lines[0]


def test_host_guard_refuses(sim: Sim, tmp_path: Path) -> None:
    root = sim("minimal")
    text = (PROFILES / "sim-minimal.yaml").read_text().replace("host: sim-minimal", "host: pve9")
    code, err, _doc = _bad_host_case(root, tmp_path, text)
    assert code == 4 and "profile is for host 'pve9'" in err


def test_attach_without_backend(sim: Sim, tmp_path: Path) -> None:
    root = sim("default")
    f = tmp_path / "att.yaml"
    f.write_text(
        "version: 1\npfs:\n  - match: {netdev: enp1s0f0}\n    total-vfs: 2\n    vfs:\n"
        "      - {id: 0, driver: vfio-pci, attach: {vm: 101, backend: proxmox}}\n"
    )
    n = len(writes(root))
    p = vfctl(root, "--backend", "none", "plan", "--json", str(f))
    assert p.code == 0
    doc = p.json()
    assert doc["phases"]["numvfs"] == 1 and doc["phases"]["bind"] == 1
    assert doc["needs_backend"][0]["backend"] == "proxmox"
    a = vfctl(root, "--backend", "none", "apply", str(f))
    assert a.code == 2 and "needs the proxmox backend" in a.err
    assert len(writes(root)) == n
    h = vfctl(root, "--backend", "none", "apply", "--no-attach", "--json", str(f))
    assert h.code == 0 and h.json()["changed"] is True


def test_failure_rolls_back_to_the_exported_state(sim: Sim) -> None:
    root = sim("default")
    before = vfctl(root, "export").out
    (root / ".vfctl-sim" / "faults.json").write_text(
        json.dumps(
            [
                {
                    "path": "sys/bus/pci/devices/*/driver_override",
                    "value": "vfio-pci",
                    "errno": "EIO",
                    "after": 1,
                }
            ]
        )
    )
    r = vfctl(root, "apply", "--json", DEMO)
    assert r.code == 5, r.out
    doc = r.json()
    assert doc["error"]["kind"] == "host" and doc["rolled_back"]
    assert vfctl(root, "export").out == before


def test_diff_shows_only_profile_keys(sim: Sim) -> None:
    root = sim("minimal")
    r = vfctl(root, "apply", "--check", "--diff", "--json", str(PROFILES / "sim-minimal.yaml"))
    d = r.json()["diff"]
    assert "total-vfs: 0" in d["before"] and "total-vfs: 4" in d["after"]
    assert "vlan-id: 42" in d["after"] and "link-state" not in d["before"]
    t = vfctl(root, "apply", "--check", "--diff", str(PROFILES / "sim-minimal.yaml"))
    assert "-  total-vfs: 0" in t.out and "+  total-vfs: 4" in t.out
