"""The lab machine's shape and the deps script's source copy, checked without booting."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from .runner import REPO, Artifacts, LabConfig, LabError, command_script, qemu_args

ART = Artifacts(
    kernel_version="6.12.0-test-amd64",
    vmlinuz=Path("/k/boot/vmlinuz-6.12.0-test-amd64"),
    initramfs=Path("/k/initramfs.cpio.gz"),
    modules=Path("/k/lib/modules/6.12.0-test-amd64"),
)
DEPS = REPO / "scripts" / "lab-deps.sh"


def device_opts(args: list[str], driver: str) -> list[dict[str, str]]:
    found = []
    for flag, val in itertools.pairwise(args):
        if flag == "-device" and val.split(",", 1)[0] == driver:
            found.append(dict(kv.split("=", 1) for kv in val.split(",")[1:] if "=" in kv))
    return found


def test_machine_has_two_igb_pfs_nvme_and_viommu(tmp_path: Path) -> None:
    args = qemu_args(LabConfig(), ART, tmp_path)
    igb = device_opts(args, "igb")
    nvme = device_opts(args, "nvme")
    ports = {p["id"] for p in device_opts(args, "pcie-root-port")}
    assert len(igb) == 2 and len(nvme) == 1
    buses = [d["bus"] for d in igb + nvme]
    assert len(set(buses)) == 3 and set(buses) <= ports
    assert len({d["mac"] for d in igb}) == 2
    assert nvme[0]["sriov_max_vfs"] == "4"
    assert device_opts(args, "intel-iommu") == [{"intremap": "on"}]
    assert args[args.index("-machine") + 1] == "q35,accel=tcg"
    assert not any("kvm" in a for a in args)
    cmdline = args[args.index("-append") + 1].split()
    assert "intel_iommu=on" in cmdline
    assert f"labkver={ART.kernel_version}" in cmdline


def test_device_count_follows_config(tmp_path: Path) -> None:
    args = qemu_args(LabConfig(igb_pfs=3, nvme=False, extra_args=("-S",)), ART, tmp_path)
    assert len(device_opts(args, "igb")) == 3
    assert device_opts(args, "nvme") == []
    assert args[-1] == "-S"


def test_paths_with_spaces_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="spaces"):
        qemu_args(LabConfig(), ART, tmp_path / "a b")


def test_command_script_quotes_env_and_cwd() -> None:
    script = command_script(["echo", "a b"], "/x y", {"K": "it's"})
    assert script.splitlines() == ["export K='it'\"'\"'s'", "cd '/x y' || exit 125", "echo 'a b'"]


def print_source(sources: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "debian.sources"
    src.write_text(sources)
    return subprocess.run(
        ["bash", str(DEPS), "--print-backports-source", str(src)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


def test_backports_source_copies_the_bookworm_stanza(tmp_path: Path) -> None:
    sources = (
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /k/sec.gpg\n\n"
        "Types: deb deb-src\n# a comment\nURIs: http://mirror.invalid/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /k/main.gpg\n"
    )
    res = print_source(sources, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "Types: deb",
        "URIs: http://mirror.invalid/debian",
        "Suites: bookworm-backports",
        "Components: main contrib",
        "Signed-By: /k/main.gpg",
    ]


def test_backports_source_missing_bookworm_is_a_clear_error(tmp_path: Path) -> None:
    res = print_source("Types: deb\nURIs: http://m.invalid/d\nSuites: trixie\n", tmp_path)
    assert res.returncode != 0
    assert "no 'Suites: bookworm' stanza" in res.stderr


def test_repeated_rcu_stalls_count_as_a_hung_guest(tmp_path: Path) -> None:
    from .runner import STALLS_DEAD, Lab

    lab = Lab()
    lab.boot_dir = tmp_path
    stall = "[  173.48] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
    (tmp_path / "console.log").write_text("boot\n" + stall)
    assert lab._stalls() == 1 < STALLS_DEAD
    (tmp_path / "console.log").write_text("boot\n" + stall * STALLS_DEAD)
    assert lab._stalls() == STALLS_DEAD


def test_a_hung_guest_is_rebooted_once_for_a_self_contained_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .runner import Lab, LabTimeout, Result

    lab = Lab()
    calls: list[str] = []
    monkeypatch.setattr(lab, "close", lambda: calls.append("close"))
    monkeypatch.setattr(lab, "start", lambda: calls.append("start"))

    def hang_then_answer(*_a: object, **_k: object) -> Result:
        calls.append("run")
        if calls.count("run") == 1:
            raise LabError("lab failed: no answer from the guest within the time limit (x)")
        return Result("ok\n", "", 0, 0.1)

    monkeypatch.setattr(lab, "_run", hang_then_answer)
    assert lab.run("true", retry_on_hang=True).stdout == "ok\n"
    assert calls == ["run", "close", "start", "run"]
    # without the flag (commands that build on earlier ones in the same boot) a hang is final
    calls.clear()
    with pytest.raises(LabError):
        lab.run("true")

    # a command that merely timed out inside a live guest is not a hang
    def timed_out(*_a: object, **_k: object) -> Result:
        raise LabTimeout("command timed out", Result("", "", 124, 60.0))

    monkeypatch.setattr(lab, "_run", timed_out)
    with pytest.raises(LabTimeout):
        lab.run("sleep 99", retry_on_hang=True)
