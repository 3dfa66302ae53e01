"""persist enable/disable/status under --root; the unit passes systemd-analyze verify."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from needs import missing
from profhelp import PROFILES, VFCTL, vfctl

from vfctl import persist

Sim = Callable[[str], Path]


def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        missing("systemd-analyze is missing (apt: systemd, deps/apt-profiles.txt)", "VFCTL_SYSTEMD")
    return exe


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_enable_status_disable_under_root(sim: Sim) -> None:
    root = sim("minimal")
    prof = PROFILES / "sim-minimal.yaml"
    r = vfctl(root, "persist", "enable", "--exec", VFCTL, "--json", str(prof))
    assert r.code == 0, r.err
    assert r.json()["changed"] is True
    unit = root / persist.UNIT_PATH
    assert (root / persist.PROFILE).read_text() == prof.read_text()
    link = root / persist.WANTS_PATH
    assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/vfctl.service"
    text = unit.read_text()
    assert (
        f"ExecStart={VFCTL} --backend none apply --no-attach --wait 120 /etc/vfctl/profile.yaml"
        in text
    )
    assert "Before=network-pre.target" in text and "pve-guests.service" in text
    assert "libvirt-guests.service" in text and "Type=oneshot" in text
    v = verify(unit)
    assert v.returncode == 0, v.stderr
    st = vfctl(root, "persist", "status", "--json").json()
    assert st["installed"] and st["enabled"] and st["profile_present"]
    again = vfctl(root, "persist", "enable", "--exec", VFCTL, "--json", str(prof))
    assert again.json()["changed"] is False
    off = vfctl(root, "persist", "disable", "--json")
    assert off.code == 0 and len(off.json()["actions"]) == 3
    assert not unit.exists() and not link.is_symlink() and not (root / persist.PROFILE).exists()
    st = vfctl(root, "persist", "status", "--json").json()
    assert not st["installed"] and not st["enabled"]
    assert vfctl(root, "persist", "disable", "--json").json()["changed"] is False


def test_verify_is_a_real_check(tmp_path: Path) -> None:
    """The same check rejects a unit whose command does not exist."""
    unit = tmp_path / "vfctl.service"
    unit.write_text(persist.unit_text(str(tmp_path / "missing" / "vfctl")))
    assert verify(unit).returncode != 0


def test_enable_refuses_invalid_profile(sim: Sim, tmp_path: Path) -> None:
    root = sim("minimal")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npfs:\n  - match: {netdev: enp1s0}\n    total-vfs: many\n")
    r = vfctl(root, "persist", "enable", "--exec", VFCTL, str(bad))
    assert r.code == 2 and "bad.yaml:4:16" in r.err
    assert not (root / "etc" / "systemd").exists() and not (root / persist.PROFILE).exists()


def test_installed_profile_applies_like_boot_would(sim: Sim) -> None:
    root = sim("minimal")
    assert (
        vfctl(root, "persist", "enable", "--exec", VFCTL, str(PROFILES / "sim-minimal.yaml")).code
        == 0
    )
    r = vfctl(root, "apply", "--no-attach", "--json", str(root / persist.PROFILE))
    assert r.code == 0 and r.json()["changed"] is True


def test_packaged_unit_is_linked_not_copied(sim: Sim) -> None:
    """The Debian package ships the unit in /usr/lib; persist enable links that one (as
    `systemctl enable` would), leaves no shadowing copy in /etc, and disable keeps the file."""
    root = sim("minimal")
    packaged = root / persist.PACKAGED_UNIT_PATH
    packaged.parent.mkdir(parents=True)
    packaged.write_text(persist.unit_text("/usr/bin/vfctl"))
    stale = root / persist.UNIT_PATH  # an earlier copy, e.g. from a venv install
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("[Unit]\n")
    prof = PROFILES / "sim-minimal.yaml"
    r = vfctl(root, "persist", "enable", "--exec", "/usr/bin/vfctl", "--json", str(prof))
    assert r.code == 0, r.err
    assert r.json()["unit"] == "/usr/lib/systemd/system/vfctl.service"
    link = root / persist.WANTS_PATH
    assert os.readlink(link) == "/usr/lib/systemd/system/vfctl.service"
    assert not stale.exists()
    st = vfctl(root, "persist", "status", "--json").json()
    assert st["installed"] and st["enabled"] and st["unit"] == "/" + persist.PACKAGED_UNIT_PATH
    assert vfctl(root, "persist", "disable", "--json").code == 0
    assert packaged.is_file() and not link.is_symlink()
    assert not vfctl(root, "persist", "status", "--json").json()["enabled"]
    # another vfctl (a venv's) gets its own unit: the packaged one would run the wrong binary
    r = vfctl(root, "persist", "enable", "--exec", VFCTL, "--json", str(prof))
    assert os.readlink(link) == "/etc/systemd/system/vfctl.service"
