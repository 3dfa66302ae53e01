"""The lab boots the real kernel with the devices the project's tests rely on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from .runner import LAB_DIR, REPO, Lab, LabTimeout

# One line per PCI device behind a root port: address, ids, driver, totalvfs, netdevs.
PCI_SCAN = r"""
for d in /sys/bus/pci/devices/*; do
    case "${d##*/}" in *:00:*) continue ;; esac
    drv=-; [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    tot=-; [ -e "$d/sriov_totalvfs" ] && tot=$(cat "$d/sriov_totalvfs")
    nets=$(ls "$d/net" 2>/dev/null | tr '\n' ,)
    echo "${d##*/} $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class") $drv $tot ${nets:--}"
done
"""


def scan(lab: Lab) -> list[dict[str, str]]:
    keys = ("address", "vendor", "device", "class", "driver", "total_vfs", "netdevs")
    out = lab.run(PCI_SCAN, check=True).stdout
    return [dict(zip(keys, line.split(), strict=True)) for line in out.splitlines()]


def igb_pfs(lab: Lab) -> list[dict[str, str]]:
    return [d for d in scan(lab) if (d["vendor"], d["device"]) == ("0x8086", "0x10c9")]


def test_boot_facts(lab: Lab, record_property: Callable[[str, object], None]) -> None:
    expected = (LAB_DIR / "kernel-version").read_text().strip()
    assert lab.kernel_version == expected
    assert lab.run("uname -r", check=True).stdout.strip() == expected
    record_property("lab_kernel", lab.kernel_version)
    record_property("lab_boot_seconds", round(lab.boot_seconds, 2))
    print(f"lab kernel {lab.kernel_version}, boot {lab.boot_seconds:.1f} s")


def test_sriov_devices_present(lab: Lab) -> None:
    devices = scan(lab)
    igb = [d for d in devices if (d["vendor"], d["device"]) == ("0x8086", "0x10c9")]
    nvme = [d for d in devices if d["class"].startswith("0x0108")]
    assert [(d["driver"], d["total_vfs"]) for d in igb] == [("igb", "7"), ("igb", "7")]
    assert [(d["driver"], d["total_vfs"]) for d in nvme] == [("nvme", "4")]
    # Separate root ports: separate buses.
    assert len({d["address"].rsplit(":", 1)[0] for d in igb + nvme}) == 3
    # No udev here: kernel names, one per PF, and they differ.
    names = [d["netdevs"].rstrip(",") for d in igb]
    assert all(n.startswith("eth") for n in names) and len(set(names)) == 2


def test_result_plumbing(lab: Lab) -> None:
    res = lab.run("printf 'out\\n'; printf 'err ü\\n' >&2; exit 7")
    assert (res.stdout, res.stderr, res.returncode) == ("out\n", "err ü\n", 7)
    argv = lab.run(["printf", "%s|", "a b", "$HOME", "it's"], check=True)
    assert argv.stdout == "a b|$HOME|it's|"
    assert lab.run("pwd", cwd="/sys/bus/pci").stdout == "/sys/bus/pci\n"
    assert lab.run("echo $LAB_PROBE", env={"LAB_PROBE": "x y"}).stdout == "x y\n"


def test_several_commands_one_boot(lab: Lab) -> None:
    boot_id = lab.run("cat /proc/sys/kernel/random/boot_id", check=True).stdout
    token = uuid.uuid4().hex
    lab.run(f"echo {token} > /run/lab-probe", check=True)
    assert lab.run("cat /run/lab-probe").stdout.strip() == token
    assert lab.run("cat /proc/sys/kernel/random/boot_id").stdout == boot_id


def test_timeout_kills_command_and_lab_survives(lab: Lab) -> None:
    with pytest.raises(LabTimeout) as info:
        lab.run("echo started; sleep 60", timeout=2)
    assert info.value.result.stdout == "started\n"
    assert lab.run("echo alive").stdout == "alive\n"


def test_guest_writes_stay_in_guest(lab: Lab) -> None:
    probe = f"/etc/vfctl-lab-probe-{uuid.uuid4().hex}"
    script = f"""
        mkdir -p /run/vfctl /run/lock/vfctl && touch /run/vfctl/x /run/lock/vfctl/y /tmp/z
        echo hi > {probe} && cat {probe}
        stat -f -c %T /run /run/lock /tmp
        cat /proc/mounts
    """
    res = lab.run(script, check=True)
    lines = res.stdout.splitlines()
    assert lines[:4] == ["hi", "tmpfs", "tmpfs", "tmpfs"]
    mounts = {f[1]: f[2] for f in (line.split() for line in lines[4:])}
    assert {mounts[m] for m in ("/proc", "/sys", "/dev", "/run", "/tmp")} == {
        "proc", "sysfs", "devtmpfs", "tmpfs"
    }  # fmt: skip
    assert not Path(probe).exists(), "a guest write reached the host"


def test_loopback_up_and_modprobe(lab: Lab) -> None:
    assert "UP" in lab.run("ip -o link show lo", check=True).stdout.split("<", 1)[1]
    lab.run("modprobe vfio-pci", check=True)
    assert lab.run("test -d /sys/bus/pci/drivers/vfio-pci && echo yes").stdout == "yes\n"


def test_enable_two_vfs(lab: Lab) -> None:
    pf = igb_pfs(lab)[0]["address"]
    dev = f"/sys/bus/pci/devices/{pf}"
    lab.run(f"echo 2 > {dev}/sriov_numvfs", check=True)
    try:
        res = lab.run(
            f"cat {dev}/sriov_numvfs; for v in {dev}/virtfn*; do "
            f'echo "${{v##*/}} $(basename $(readlink $v)) $(basename $(readlink $v/driver))"; done',
            check=True,
        )
        lines = res.stdout.splitlines()
        assert lines[0] == "2"
        vfs = [line.split() for line in lines[1:]]
        assert [v[0] for v in vfs] == ["virtfn0", "virtfn1"]
        assert all(v[2] == "igbvf" for v in vfs)
        bus = pf.rsplit(":", 1)[0]
        assert all(v[1].startswith(bus + ":") and v[1] != pf for v in vfs)
    finally:
        lab.run(f"echo 0 > {dev}/sriov_numvfs", check=True)
    assert lab.run(f"ls {dev} | grep -c virtfn").stdout.strip() == "0"


def test_project_venv_runs_in_guest(lab: Lab) -> None:
    code = "import json, sys, vfctl; print(json.dumps([sys.prefix, vfctl.__file__]))"
    res = lab.run(["python", "-c", code], check=True)
    prefix, module = json.loads(res.stdout)
    assert Path(prefix) == REPO / ".venv"
    assert Path(module) == REPO / "vfctl" / "__init__.py"
