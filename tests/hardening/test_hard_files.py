"""Issue 11 items 7, 10, 11: exit codes instead of tracebacks, systemd quoting, writes that stay
inside a --root tree."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hard import cli, vfctl

from vfctl import persist

IGB = "0000:02:00.0"


# ---------------------------------------------------------------- item 7: no tracebacks


@pytest.mark.parametrize(
    ("target", "code"), [("/dev/full", 2), ("DIR", 2), ("DIR/missing/out.yaml", 3)]
)
def test_export_output_errors_exit_2(simroot: Path, tmp_path: Path, target: str, code: int) -> None:
    """2 for a path that cannot be written; 3 for a directory that is not there (not found)."""
    out = target.replace("DIR", str(tmp_path))
    r = cli(simroot, "--backend", "none", "export", "-o", out)
    assert r.code == code, r.err
    assert r.err.startswith(f"vfctl: error: -o {out}: cannot write")


def test_sim_init_force_on_a_symlink_refused(simroot: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(simroot)
    r = cli(tmp_path, "sim", "init", str(link), "--force")
    assert r.code == 4, r.err
    assert "symbolic link" in r.err
    assert (simroot / ".vfctl-sim").is_dir()  # the target is untouched


def test_sim_init_on_a_file_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = cli(tmp_path, "sim", "init", str(f))
    assert r.code == 4, r.err


@pytest.mark.parametrize(
    ("args", "envelope"),
    [
        (("enable", "enp2s0f0", "abc"), True),
        (("bind", "enp2s0f0", "vf0", "--bogus"), True),
        (("list", "--bogus"), False),
        (("show",), False),
    ],
)
def test_json_usage_errors_print_one_document(
    simroot: Path, args: tuple[str, ...], envelope: bool
) -> None:
    r = vfctl("--backend", "none", *args, "--json", root=simroot)
    assert r.code == 2, r.err
    doc = r.json()  # exactly one document: json.loads refuses trailing data
    assert doc["error"]["kind"] == "invalid"
    assert ("actions" in doc) is envelope
    assert "Traceback" not in r.err


# ---------------------------------------------------------------- item 10: persist --exec


@pytest.mark.parametrize("exe", ["/usr/bin/vfctl\nExecStartPre=/bin/sh -c id", "/x\r", "/a\x00b"])
def test_persist_exec_control_characters_refused(tmp_path: Path, exe: str) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text("version: 1\npfs: []\n")
    root = tmp_path / "root"
    root.mkdir()
    r = cli(root, "persist", "enable", str(prof), "--exec", exe)
    assert r.code == 2, r.err
    assert "control characters" in r.err
    assert not (root / persist.UNIT_PATH).exists()


@pytest.mark.parametrize(
    "exe", ["/opt/my tools/vfctl", "/opt/it's/vfctl", '/opt/a"b\\c/vfctl', "/opt/v$HOME/100%/vfctl"]
)
def test_persist_exec_quoted_for_systemd(tmp_path: Path, exe: str) -> None:
    text = persist.unit_text(exe)
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    words = line.removeprefix("ExecStart=")
    # systemd: "..." with C escapes for \\ and \", then %% -> % and $$ -> $ (systemd.service(5))
    parsed = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(words)]
    assert parsed == list(persist.boot_command(exe, "/etc/vfctl/profile.yaml"))
    assert parsed[0] == exe
    assert "'\"'\"'" not in words  # shell quoting is not systemd's
    assert "%" not in exe or "%%" in words
    assert "$" not in exe or "$$" in words


# ---------------------------------------------------------------- item 11: confined writes


def test_root_tree_write_through_symlink_out_refused(tmp_path: Path) -> None:
    """A non-simulated --root whose device link points outside: the write must not land there."""
    from vfctl.host.open import KernelHost, open_host

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sriov_numvfs").write_text("0\n")
    root = tmp_path / "root"
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink(outside, root / "sys/bus/pci/devices" / IGB)
    h = open_host(root)
    assert type(h) is KernelHost  # the real one: writes go to the tree
    with pytest.raises(OSError, match="outside the host root"):
        h.write(f"sys/bus/pci/devices/{IGB}/sriov_numvfs", "4")
    assert (outside / "sriov_numvfs").read_text() == "0\n"


def test_root_tree_write_inside_allowed(tmp_path: Path) -> None:
    from vfctl.host.open import open_host

    root = tmp_path / "root"
    real = root / "sys/devices/pci0000:00" / IGB
    real.mkdir(parents=True)
    (real / "sriov_numvfs").write_text("0\n")
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink(f"../../../devices/pci0000:00/{IGB}", root / "sys/bus/pci/devices" / IGB)
    open_host(root).write(f"sys/bus/pci/devices/{IGB}/sriov_numvfs", "4")
    assert (real / "sriov_numvfs").read_text().startswith("4")  # sysfs: no O_TRUNC


@pytest.mark.parametrize("linked", ["etc", "etc/systemd", "etc/vfctl"])
def test_persist_never_writes_through_symlinks_out_of_root(tmp_path: Path, linked: str) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text("version: 1\npfs: []\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / linked).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, root / linked)
    r = cli(root, "persist", "enable", str(prof), "--exec", "/usr/bin/vfctl")
    assert r.code == 4, r.err
    assert "outside the root" in r.err
    assert list(outside.iterdir()) == []


def test_persist_temp_file_link_not_followed(tmp_path: Path) -> None:
    prof = tmp_path / "p.yaml"
    prof.write_text("version: 1\npfs: []\n")
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    root = tmp_path / "root"
    (root / "etc/vfctl").mkdir(parents=True)
    os.symlink(victim, root / "etc/vfctl/profile.yaml.vfctl-tmp")
    r = cli(root, "persist", "enable", str(prof), "--exec", "/usr/bin/vfctl")
    assert r.code == 0, r.err
    assert victim.read_text() == "keep\n"
    assert (root / "etc/vfctl/profile.yaml").read_text() == prof.read_text()


def test_root_tree_never_reaches_this_machine_kernel(tmp_path: Path) -> None:
    """modprobe and netlink act on the machine vfctl runs on: a --root tree must not use them."""
    import errno

    from vfctl.host import netlink
    from vfctl.host.open import open_host

    root = tmp_path / "root"
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    h = open_host(root)
    with pytest.raises(OSError) as e:
        h.modprobe("vfio-pci")
    assert e.value.errno == errno.EXDEV
    with pytest.raises(OSError) as e:
        netlink.set_vf(h, "lo", 0, {"trust": True})
    assert e.value.errno == errno.EXDEV
