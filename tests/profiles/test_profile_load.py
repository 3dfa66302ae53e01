"""Profile loading: strict schema, every problem located (file:line:column + key path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from profhelp import PROFILES, REPO

from vfctl import profile
from vfctl.profile import ProfileInvalid


def problems(text: str) -> list[profile.Problem]:
    with pytest.raises(ProfileInvalid) as e:
        profile.loads(text, "p.yaml")
    assert e.value.exit_code == 2
    return e.value.problems


HEAD = "version: 1\npfs:\n  - match: {netdev: eth2}\n"

# (profile text, expected line, column, key path, message fragment)
CASES = [
    (HEAD + "    total-vfz: 4\n", 4, 5, "pfs[0].total-vfz", "did you mean 'total-vfs'"),
    (HEAD + "    total-vfs: four\n", 4, 16, "pfs[0].total-vfs", "expected an integer"),
    (HEAD + "    total-vfs: -1\n", 4, 16, "pfs[0].total-vfs", "below the minimum 0"),
    (
        HEAD + "    vfs:\n      - id: 1\n        vlan-id: 5000\n",
        6,
        18,
        "pfs[0].vfs[0].vlan-id",
        "above the maximum 4094",
    ),
    (
        HEAD + "    vfs:\n      - id: 1\n        trust: maybe\n",
        6,
        16,
        "pfs[0].vfs[0].trust",
        "expected true or false",
    ),
    (
        HEAD + "    vfs:\n      - id: 1\n        mac-address: 525400123456\n",
        6,
        22,
        "pfs[0].vfs[0].mac-address",
        "quote MACs",
    ),
    (
        HEAD + '    vfs:\n      - id: 1\n        mac-address: "01:00:00:00:00:01"\n',
        6,
        22,
        "pfs[0].vfs[0].mac-address",
        "multicast",
    ),
    (
        HEAD + '    total-vfs: 4\n    vfs:\n      - id: 1\n      - id: "0-2"\n',
        7,
        13,
        "pfs[0].vfs[1].id",
        "duplicate VF id 1 (also at line 6)",
    ),
    (
        HEAD + "    total-vfs: 4\n    vfs:\n      - id: 4\n",
        6,
        13,
        "pfs[0].vfs[0].id",
        "VF id 4 is out of range: total-vfs is 4",
    ),
    (HEAD + '    vfs:\n      - id: "3-1"\n', 5, 13, "pfs[0].vfs[0].id", "end before start"),
    (
        HEAD + "    vfs:\n      - id: 0\n        attach: {vm: 101, backend: proxmox, slot: 2}\n"
        "      - id: 1\n        attach: {vm: vm101, backend: proxmox, slot: 2}\n",
        8,
        53,
        "pfs[0].vfs[1].attach.slot",
        "two VFs attached to slot 2 of VM vm101",
    ),
    (
        HEAD + "    vfs:\n      - id: 0\n        attach: {vm: a, backend: xen}\n",
        6,
        34,
        "pfs[0].vfs[0].attach.backend",
        "invalid backend 'xen': libvirt or proxmox",
    ),
    (
        HEAD + "    vfs:\n      - id: 0\n        attach: {vm: a, backend: libvirt, pcie: true}\n",
        6,
        43,
        "pfs[0].vfs[0].attach.pcie",
        "unknown key 'pcie'",
    ),
    (
        'version: 1\npfs:\n  - match: {netdev: eth2, pci: "03:00.0"}\n',
        3,
        12,
        "pfs[0].match",
        "give exactly one of",
    ),
    (
        'version: 1\npfs:\n  - match: {vendor: 8086, device: "10fb"}\n',
        3,
        21,
        "pfs[0].match.vendor",
        "quote it",
    ),
    (
        "version: 1\npfs:\n  - match: {netdev: eth2, index: 1}\n",
        3,
        27,
        "pfs[0].match.index",
        "needs 'vendor' and 'device'",
    ),
    ("version: 2\npfs: []\n", 1, 10, "version", "must be 1"),
    ("version: 1\nversion: 1\npfs: []\n", 2, 1, "version", "duplicate key 'version'"),
    ("pfs: []\n", 1, 1, "", "missing required key 'version'"),
    (
        'version: 1\ndefaults: {mac-address: "02:00:00:00:00:01"}\npfs: []\n',
        2,
        25,
        "defaults.mac-address",
        "every VF the same MAC",
    ),
    ("version: 1\npfs: [\n", 3, 1, "", "YAML syntax"),
]


@pytest.mark.parametrize(("text", "line", "col", "path", "msg"), CASES)
def test_each_problem_is_located(text: str, line: int, col: int, path: str, msg: str) -> None:
    found = problems(text)
    hit = [p for p in found if msg in p.message]
    assert hit, [str(p) for p in found]
    assert (hit[0].line, hit[0].column, hit[0].path) == (line, col, path)
    assert str(hit[0]).startswith(f"p.yaml:{line}:{col}: ")


def test_all_problems_reported_at_once() -> None:
    text = (
        HEAD + "    total-vfs: 2\n    speed: 3\n    vfs:\n      - id: 1\n        qos: 9\n"
        "      - id: 1\n      - id: 5\n"
    )
    found = problems(text)
    assert len(found) == 4, [str(p) for p in found]
    assert [p.line for p in found] == sorted(p.line for p in found)


def test_valid_profile_loads_with_values() -> None:
    p = profile.loads(HEAD + '    total-vfs: 4\n    vfs:\n      - {id: "0-1", vlan-id: 7}\n')
    assert p.pfs[0]["total-vfs"] == 4
    assert profile.vf_ids(p.pfs[0]["vfs"][0]["id"]) == [0, 1]


EXAMPLES = sorted(PROFILES.glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_profiles_valid_with_modeline(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./schema.json\n")
    profile.loads(text, str(path))
    jsonschema.Draft202012Validator(profile.json_schema()).validate(yaml.safe_load(text))


def test_schema_json_in_sync_with_code() -> None:
    on_disk = json.loads((PROFILES / "schema.json").read_text())
    assert on_disk == profile.json_schema(), "run scripts/gen-profile-docs.py"
    jsonschema.Draft202012Validator.check_schema(on_disk)


def test_docs_in_sync_with_schema() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-profile-docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    doc = (REPO / "docs" / "profiles.md").read_text()
    for key in ("total-vfs", "spoof-check", "driver-keep", "drivers-autoprobe"):
        assert f"| `{key}` |" in doc


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if "YAML syntax" not in c[4]
        and "duplicate" not in c[4]
        and "same MAC" not in c[4]
        and "out of range" not in c[4]
        and "slot" not in c[4]
        and "multicast" not in c[4]
        and "end before" not in c[4]
    ],
    ids=lambda c: c[3] or "top",
)
def test_published_schema_rejects_what_vfctl_rejects(case: tuple[str, ...]) -> None:
    """Schema-level cases: the editor's validator agrees with vfctl's."""
    doc = yaml.safe_load(case[0])
    errs = list(jsonschema.Draft202012Validator(profile.json_schema()).iter_errors(doc))
    assert errs
