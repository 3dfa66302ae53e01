"""Issue 12 §1: the persistence unit at boot, on an emulated PVE node and libvirt host.

At that point in the boot (SEMANTICS.md "Boot order on a node"; proxmox/pve-cluster
``debian/pve-cluster.service``: pmxcfs is ``After=network.target``) ``/etc/pve`` is an empty
mount point and ``pvesh`` fails with ``ipcc_send_rec[1] failed: Connection refused``; a
libvirt host's daemon socket may refuse connections. The unit's own ExecStart argv
(``persist.boot_command``, the line ``unit_text`` writes) must still converge the host and
contact no VM manager. Each scenario also runs the previous ExecStart as a control: it fails
there, so the test can tell the two apart.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from needs import missing
from profhelp import PROFILES, VFCTL, make_sim, vfctl

from vfctl import persist

REPO = Path(__file__).resolve().parents[2]
FAKEPVE = REPO / "tests" / "pve" / "fakepve.py"
OLD_EXECSTART = ["apply", "--no-attach", "--wait", "120"]  # before issue 12: asked the VM manager


def _system_env(root: Path, bindir: Path, **extra: str) -> dict[str, str]:
    """What systemd gives a unit (PATH, no VFCTL_* settings), plus the emulated root."""
    return {
        "PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "VFCTL_ROOT": str(root),
        **extra,
    }


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _install(root: Path, profile: Path) -> list[str]:
    r = vfctl(root, "--backend", "none", "persist", "enable", "--exec", VFCTL, str(profile))
    assert r.code == 0, r.err
    text = (root / persist.UNIT_PATH).read_text()
    argv = persist.boot_command(VFCTL)
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert line == "ExecStart=" + " ".join(argv)  # the unit runs exactly boot_command
    for unit in ("pve-guests.service", "pve-ha-lrm.service", "libvirt-guests.service"):
        assert unit in text
    assert "pve-cluster" not in text  # never waits on pmxcfs
    # the installed profile lives under the emulated root: same argv, profile path re-rooted
    return [*argv[:-1], str(root / persist.PROFILE)]


def _converged(root: Path, profile: Path) -> None:
    r = vfctl(root, "--backend", "none", "apply", "--no-attach", "--check", "--json", str(profile))
    assert r.code == 0, r.err
    assert r.json()["changed"] is False, r.json()["actions"]


@pytest.fixture
def early_pve(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A PVE node before pmxcfs: empty /etc/pve, a pvesh that fails like the real one."""
    root = make_sim(tmp_path / "node", "default")
    (root / "etc/pve").mkdir(parents=True)  # the mount point, empty
    (root / "etc/hostname").write_text("pve1\n")
    state = tmp_path / "pve-state.json"
    state.write_text('{"nodes": ["pve1"], "vms": {}, "mappings": {}, "log": []}')
    Path(str(state) + ".early-boot").touch()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "pvesh"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S {FAKEPVE} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return root, bindir, state


def test_boot_on_pve_node_before_pmxcfs(early_pve: tuple[Path, Path, Path]) -> None:
    root, bindir, state = early_pve
    profile = PROFILES / "proxmox-example.yaml"  # has attach entries for VMs 101 and 102
    argv = _install(root, profile)
    env = _system_env(root, bindir, FAKEPVE_STATE=str(state))
    calls = Path(str(state) + ".early-boot")

    control = _run([VFCTL, *OLD_EXECSTART, argv[-1]], env)
    assert control.returncode == 6, control.stderr
    assert "Connection refused" in control.stderr and calls.read_text() != ""
    calls.write_text("")

    boot = _run(argv, {**env, "VFCTL_BACKEND": "proxmox"})  # even with a stray setting
    assert boot.returncode == 0, boot.stderr
    assert calls.read_text() == ""  # pvesh never called
    _converged(root, profile)
    shown = vfctl(root, "--backend", "none", "show", "enp1s0f0", "--json").json()
    assert shown["num_vfs"] == 8 and {v["driver"] for v in shown["vfs"]} == {"vfio-pci"}
    assert shown["vfs"][0]["vlan"] == 100 and shown["vfs"][7]["vlan"] == 200


def test_boot_on_libvirt_host_whose_socket_refuses(tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        missing("libvirt-python is missing (make venv-dev installs it)")
    root = make_sim(tmp_path / "host", "minimal")
    sock_path = root / "run/libvirt/libvirt-sock"
    sock_path.parent.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock_path))  # bound, never listening: connect() gets ECONNREFUSED
    s.close()
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError):
        probe.connect(str(sock_path))
    probe.close()
    profile = PROFILES / "sim-minimal.yaml"
    argv = _install(root, profile)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = _system_env(root, bindir, VFCTL_LIBVIRT_URI=f"qemu+unix:///system?socket={sock_path}")

    control = _run([VFCTL, *OLD_EXECSTART, argv[-1]], env)
    assert control.returncode == 6, control.stderr

    boot = _run(argv, env)
    assert boot.returncode == 0, boot.stderr
    _converged(root, profile)
    assert os.path.exists(sock_path)
