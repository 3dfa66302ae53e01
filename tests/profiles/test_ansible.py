"""A real ansible-playbook over three local "hosts", each its own simulated root (forks=3):
the vfctl.sriov collection (built with ansible-galaxy, installed, documented for ansible-doc),
and the plain shell-out pattern with ansible.builtin.command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from needs import missing
from profhelp import PROFILES, REPO, VFCTL, make_sim, writes

HOSTS = ("hv1", "hv2", "hv3")
PLAYBOOK = """
- hosts: hypervisors
  gather_facts: false
  environment:
    VFCTL_ROOT: "{{ vfctl_root }}"
  tasks:
    - name: SR-IOV profile
      vfctl.sriov.vfctl_apply:
        profile: "{{ vfctl_profile }}"
        vfctl: "%s"
"""
# The same contract without the collection: vfctl's envelope decides changed and failed;
# `command` is skipped in check mode unless told otherwise, so it runs and passes --check.
SHELL_OUT = """
- hosts: hypervisors
  gather_facts: false
  environment:
    VFCTL_ROOT: "{{ vfctl_root }}"
  tasks:
    - name: SR-IOV profile (shell-out)
      ansible.builtin.command:
        argv: "{{ ['%s', 'apply', '--json'] + (['--check'] if ansible_check_mode else [])
                  + [vfctl_profile] }}"
      check_mode: false
      register: vfctl
      changed_when: (vfctl.stdout | from_json).changed
      failed_when: vfctl.rc != 0 or (vfctl.stdout | from_json).error is not none
"""


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        missing(f"{name} missing (pip: ansible-core, the dev extra)")
    return found


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """contrib/ansible built by ansible-galaxy and installed, as a user would."""
    tmp = tmp_path_factory.mktemp("galaxy")
    galaxy = _bin("ansible-galaxy")
    out = str(tmp)
    b = subprocess.run(
        [galaxy, "collection", "build", str(REPO / "contrib" / "ansible"), "--output-path", out],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert b.returncode == 0, b.stdout + b.stderr
    tarball = next(tmp.glob("vfctl-sriov-*.tar.gz"))
    i = subprocess.run(
        [galaxy, "collection", "install", str(tarball), "-p", str(tmp / "c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert i.returncode == 0, i.stdout + i.stderr
    yield tmp / "c"


def playbook_bin() -> str:
    exe = Path(sys.executable).with_name("ansible-playbook")
    if not exe.exists():
        found = shutil.which("ansible-playbook")
        if found is None:
            missing("ansible-playbook missing (pip: ansible-core, the dev extra)")
        return found
    return str(exe)


def _play(
    tmp: Path, profile: Path, *extra: str, coll: Path | None = None, book: str = PLAYBOOK
) -> dict[str, Any]:
    inv = tmp / "inventory.ini"
    inv.write_text(
        "[hypervisors]\n"
        + "".join(
            f"{h} ansible_connection=local ansible_python_interpreter={sys.executable} "
            f"vfctl_root={tmp / h} vfctl_profile={profile}\n"
            for h in HOSTS
        )
    )
    pb = tmp / "site.yml"
    pb.write_text(book % VFCTL)
    tree = tmp / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(coll or tmp / "no-collections"),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
        "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_LOCAL_TEMP": str(tmp / ".ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    r = subprocess.run(
        [playbook_bin(), "-i", str(inv), "--forks", "3", str(pb), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp,
    )
    recap = {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "failed": int(m[4])}
        for m in re.finditer(
            r"^(hv\d)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+"
            r"unreachable=\d+\s+failed=(\d+)",
            r.stdout,
            re.M,
        )
    }
    assert set(recap) == set(HOSTS), r.stdout + r.stderr
    hosts = {h: json.loads((tree / h).read_text()) for h in HOSTS}
    return {"rc": r.returncode, "stats": recap, "hosts": hosts, "out": r.stdout}


def results(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(doc["hosts"])


@pytest.mark.parametrize("style", ["collection", "shell-out"])
def test_fleet_apply_idempotent_check_and_bad_profile(
    tmp_path: Path, collections: Path, style: str
) -> None:
    book = PLAYBOOK if style == "collection" else SHELL_OUT

    def play(tmp: Path, profile: Path, *extra: str) -> dict[str, Any]:
        return _play(tmp, profile, *extra, coll=collections, book=book)

    for h in HOSTS:
        make_sim(tmp_path / h, "minimal")
    prof = tmp_path / "fleet.yaml"
    prof.write_text((PROFILES / "sim-minimal.yaml").read_text().replace("host: sim-minimal\n", ""))
    base = {h: len(writes(tmp_path / h)) for h in HOSTS}

    check = play(tmp_path, prof, "--check", "--diff")
    assert check["rc"] == 0
    res = results(check)
    assert all(res[h]["changed"] for h in HOSTS)
    if style == "collection":
        assert "+  total-vfs: 4" in check["out"] and "-  total-vfs: 0" in check["out"]
    assert {h: len(writes(tmp_path / h)) for h in HOSTS} == base  # check mode changed nothing

    first = play(tmp_path, prof)
    assert first["rc"] == 0
    assert {h: s["changed"] for h, s in first["stats"].items()} == {h: 1 for h in HOSTS}
    after_first = {h: len(writes(tmp_path / h)) for h in HOSTS}
    assert all(after_first[h] > base[h] for h in HOSTS)

    second = play(tmp_path, prof)
    assert second["rc"] == 0
    assert {h: s["changed"] for h, s in second["stats"].items()} == {h: 0 for h in HOSTS}
    assert {h: len(writes(tmp_path / h)) for h in HOSTS} == after_first

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npfs:\n  - match: {netdev: enp1s0}\n    total-vfz: 4\n")
    failed = play(tmp_path, bad)
    assert failed["rc"] != 0
    assert {h: s["failed"] for h, s in failed["stats"].items()} == {h: 1 for h in HOSTS}
    for h in HOSTS:
        r = results(failed)[h]
        if style == "collection":
            assert "bad.yaml:4:5: pfs[0].total-vfz: unknown key 'total-vfz'" in r["msg"]
            assert r["errors"][0]["line"] == 4
        else:  # the envelope itself, as the playbook's register saw it
            doc = json.loads(r["stdout"])
            assert r["rc"] == 2 and doc["error"]["kind"] == "invalid"
            assert doc["errors"][0]["line"] == 4
    assert {h: len(writes(tmp_path / h)) for h in HOSTS} == after_first


def test_ansible_doc_renders_the_module(collections: Path) -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    doc = subprocess.run(
        [_bin("ansible-doc"), "-t", "module", "vfctl.sriov.vfctl_apply"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert doc.returncode == 0, doc.stderr
    for want in ("vfctl apply --json", "OPTIONS", "profile", "EXAMPLES", "RETURN VALUES"):
        assert want in doc.stdout, want
    js = subprocess.run(
        [_bin("ansible-doc"), "--json", "-t", "module", "vfctl.sriov.vfctl_apply"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    d = json.loads(js.stdout)["vfctl.sriov.vfctl_apply"]
    assert set(d["doc"]["options"]) == {
        "profile",
        "content",
        "vfctl",
        "root",
        "backend",
        "attach",
        "wait",
    }
    assert {"actions", "rc", "errors"} <= set(d["return"])
    assert "vfctl.sriov.vfctl_apply" in d["examples"]
