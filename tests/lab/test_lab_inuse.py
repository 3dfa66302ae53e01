"""The in-use rules on the real kernel: a VF netdev enslaved to a real bond, and a VF that is a
port of the bridge carrying the default route.

One guest command: enable 2 VFs (igbvf gives each a netdev), enslave VF 0's netdev to a bond
(`ip link … master`), then `disable`, `enable 3` and `bind vf0` must exit 4 naming the bond,
with no sysfs file opened for writing (strace) and the bond still holding its port; VF 1's
netdev joins a bridge that the default route leaves through: `disable --force` and
`bind vf1 --force` exit 4 asking for --force-host-nic, `bind vf1 --force-host-nic` binds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .runner import GUEST_SHARE, REPO, Lab

SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/u; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${PF##*/}
D=/sys/bus/pci/devices/$PF
echo $PF > $O/pf
state() { sh __REPO__/tests/lab/data/state.sh / $PF > $O/$1.state; }
step() { n=$1; shift; "$@" > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; state $n; }
traced() { n=$1; shift
    strace -f --seccomp-bpf -qq -e trace=openat -e status=successful -o $O/$n.trace "$@" \
        > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; state $n
    grep -E 'O_(WRONLY|RDWR)' $O/$n.trace | grep -o '"/sys/[^"]*"' > $O/$n.writes || true; }

step enable vfctl enable $PF 2 --json
N0=$(ls $D/virtfn0/net); N1=$(ls $D/virtfn1/net); echo "$N0 $N1" > $O/netdevs
modprobe bonding max_bonds=0; modprobe bridge
ip link add vfbond type bond mode active-backup
ip link set $N0 down; ip link set $N0 master vfbond; ip link set vfbond up
cat /sys/class/net/vfbond/bonding/slaves > $O/slaves.before
traced bond_disable vfctl disable $PF --json
traced bond_enable vfctl enable $PF 3 --json
traced bond_bind vfctl bind $PF vf0 --json
cat /sys/class/net/vfbond/bonding/slaves > $O/slaves.after
# no default PVID: the bridge would add VLAN 1 to the port's filter, which igbvf asks of the PF
# over the mailbox and QEMU's igb refuses ("failed to initialize vlan filtering on this port")
ip link add vmbr0 type bridge vlan_default_pvid 0; ip link set vmbr0 up
ip link set $N1 master vmbr0 && basename $(readlink /sys/class/net/$N1/master) > $O/port
ip addr add 192.0.2.10/24 dev vmbr0
ip route replace default via 192.0.2.1 dev vmbr0 onlink
ip route show default > $O/route
traced br_disable vfctl disable $PF --force --json
traced br_bind vfctl bind $PF vf1 --force --json
step br_bind_hostnic vfctl bind $PF vf1 --force-host-nic --json
"""


@pytest.fixture(scope="module")
def run(lab: Lab) -> dict[str, Any]:
    script = SCRIPT.replace("__SHARE__", GUEST_SHARE).replace("__REPO__", str(REPO))
    lab.run(script, timeout=600, check=True, retry_on_hang=True)
    out = lab.share / "u"
    n0, n1 = (out / "netdevs").read_text().split()
    return {"dir": out, "pf": (out / "pf").read_text().strip(), "n0": n0, "n1": n1}


def rd(run: dict[str, Any], name: str) -> str:
    p: Path = run["dir"] / name
    return p.read_text() if p.exists() else ""


def rc(run: dict[str, Any], step: str) -> int:
    return int(rd(run, f"{step}.rc"))


def doc(run: dict[str, Any], step: str) -> dict[str, Any]:
    text = rd(run, f"{step}.out")
    assert text.strip(), f"{step}: no JSON; stderr: {rd(run, step + '.err')}"
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_enable_gives_each_vf_a_netdev(run: dict[str, Any]) -> None:
    assert rc(run, "enable") == 0, rd(run, "enable.err")
    assert run["n0"] and run["n1"] and run["n0"] != run["n1"]


@pytest.mark.parametrize("step", ["bond_disable", "bond_enable", "bond_bind"])
def test_vf_in_a_bond_is_refused_and_nothing_changes(run: dict[str, Any], step: str) -> None:
    assert rc(run, step) == 4, rd(run, f"{step}.err")
    msg = doc(run, step)["error"]["message"]
    assert f"{run['n0']} is a member of bond vfbond" in msg and "--force" in msg
    assert rd(run, f"{step}.writes") == ""  # no sysfs file opened for writing
    assert rd(run, f"{step}.state") == rd(run, "enable.state")  # numvfs, drivers unchanged
    assert rd(run, "slaves.after").split() == rd(run, "slaves.before").split() == [run["n0"]]


@pytest.mark.parametrize("step", ["br_disable", "br_bind"])
def test_port_of_the_default_route_bridge_needs_force_host_nic(
    run: dict[str, Any], step: str
) -> None:
    assert "dev vmbr0" in rd(run, "route") and rd(run, "port").strip() == "vmbr0"
    assert rc(run, step) == 4, rd(run, f"{step}.err")
    msg = doc(run, step)["error"]["message"]
    assert f"{run['n1']} carries the host's default route (via vmbr0)" in msg
    assert "--force-host-nic" in msg
    assert rd(run, f"{step}.writes") == ""
    assert rd(run, f"{step}.state") == rd(run, "enable.state")


def test_force_host_nic_overrides(run: dict[str, Any]) -> None:
    assert rc(run, "br_bind_hostnic") == 0, rd(run, "br_bind_hostnic.err")
    rows = [ln.split() for ln in rd(run, "br_bind_hostnic.state").splitlines() if ln[:3] == "vf "]
    assert rows[1][3] == "vfio-pci" and rows[0][3] == "igbvf"
