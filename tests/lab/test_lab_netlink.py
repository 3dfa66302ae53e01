"""VF settings over netlink on the real igb driver, read back by vfctl and by iproute2.

`vfctl set` then `vfctl show --json` and `ip -d link show PF` must tell the same story; a second
identical run changes nothing; invalid values are refused before any netlink write; and what
igb refuses (rates without carrier, min_tx_rate, link-state, query-rss, 802.1ad) is reported
with the errno class that iproute2 gets for the same request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .runner import GUEST_SHARE, Lab

MAC = "02:11:22:33:44:55"
SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/n; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${PF##*/}
ND=$(ls /sys/bus/pci/devices/$PF/net | head -1)
echo $ND > $O/nd
echo 2 > /sys/bus/pci/devices/$PF/sriov_numvfs
step() { n=$1; shift; "$@" > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; ip -d link show $ND > $O/$n.ip; }
ipset() { n=$1; shift; ip link set $ND vf 1 "$@" 2> $O/$n.err; echo $? > $O/$n.rc; }
step set vfctl set $ND vf0 --mac __MAC__ --vlan 100 --qos 3 --spoofchk off --trust on --json
step show vfctl show $ND --json
step again vfctl set $ND vf0 --mac __MAC__ --vlan 100 --qos 3 --spoofchk off --trust on --json
step bad_vlan vfctl set $ND vf0 --vlan 5000 --json
step bad_mac vfctl set $ND vf0 --mac 01:00:5e:00:00:01 --json
step max_down vfctl set $ND vf1 --max-tx-rate 100 --json
ipset ip_max_down max_tx_rate 100
step min_rate vfctl set $ND vf1 --min-tx-rate 10 --json
ipset ip_min_rate min_tx_rate 10
step link_state vfctl set $ND vf1 --link-state disable --json
ipset ip_link_state state disable
step query_rss vfctl set $ND vf1 --query-rss on --json
ipset ip_query_rss query_rss on
step qinq vfctl set $ND vf1 --vlan 10 --vlan-proto 802.1ad --json
ipset ip_qinq vlan 10 proto 802.1ad
ip link set $ND up
for _ in $(seq 50); do [ "$(cat /sys/class/net/$ND/carrier 2>/dev/null)" = 1 ] && break; sleep 0.1; done
cat /sys/class/net/$ND/carrier > $O/carrier
step max_up vfctl set $ND vf1 --max-tx-rate 100 --json
step show_up vfctl show $ND --json
python -c "$RTNL_DIFF" > $O/rtnl.json 2> $O/rtnl.err
"""

# vfctl's raw RTM_GETLINK decoder (vfctl/host/rtnl.py) against pyroute2 on the real kernel's
# answer, every link, with and without stats (the kernel then also sends IFLA_VF_STATS)
RTNL_DIFF = r"""
import json
from pyroute2 import IPRoute
from vfctl.host import netlink, rtnl
out = {}
for mask in (1, 9):
    mine = {k: [s.to_json() for s in v] for k, v in rtnl.dump_vf_info(mask).items()}
    with IPRoute() as ip:
        ref = {m.get_attr("IFLA_IFNAME"): [s.to_json() for s in netlink._vf_list(m)]
               for m in ip.get_links(ext_mask=mask)}
    out[mask] = {"mine": mine, "ref": ref}
print(json.dumps(out))
"""

# What igb answers, as iproute2 reports it, and the words vfctl uses for that errno.
IGB_REFUSALS = {
    "max_down": ("Invalid argument", "rejected (EINVAL)"),
    "min_rate": ("Invalid argument", "rejected (EINVAL)"),
    "link_state": ("Operation not supported", "not supported by the driver"),
    "query_rss": ("Operation not supported", "not supported by the driver"),
}


@pytest.fixture(scope="module")
def run(lab: Lab) -> dict[str, Any]:
    script = SCRIPT.replace("__SHARE__", GUEST_SHARE).replace("__MAC__", MAC)
    lab.run(script, timeout=600, check=True, retry_on_hang=True, env={"RTNL_DIFF": RTNL_DIFF})
    return {"dir": lab.share / "n", "nd": (lab.share / "n" / "nd").read_text().strip()}


def rd(run: dict[str, Any], name: str) -> str:
    p: Path = run["dir"] / name
    return p.read_text() if p.exists() else ""


def rc(run: dict[str, Any], step: str) -> int:
    return int(rd(run, f"{step}.rc"))


def doc(run: dict[str, Any], step: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(rd(run, f"{step}.out"))
    return parsed


def ip_vfs(text: str) -> dict[int, dict[str, Any]]:
    """The `vf N link/ether MAC ..., vlan V, qos Q, spoof checking X, ..., trust Y` lines."""
    out: dict[int, dict[str, Any]] = {}
    for m in re.finditer(r"^\s+vf (\d+)\s+link/ether (\S+)[^,]*,(.*)$", text, re.M):
        fields = [f.strip() for f in m[3].split(",")]
        d: dict[str, Any] = {"mac": m[2], "vlan": 0, "qos": 0, "max_tx_rate": 0}
        for f in fields:
            if f.startswith("vlan "):
                d["vlan"] = int(f.split()[1])
            elif f.startswith("qos "):
                d["qos"] = int(f.split()[1])
            elif f.startswith("spoof checking "):
                d["spoofchk"] = f.endswith(" on")
            elif f.startswith("trust "):
                d["trust"] = f.endswith(" on")
            elif f.startswith("link-state "):
                d["link_state"] = f.split()[1]
            elif f.startswith("max_tx_rate "):
                d["max_tx_rate"] = int(f.split()[1].removesuffix("Mbps"))
        out[int(m[1])] = d
    return out


def shown(run: dict[str, Any], step: str, index: int) -> dict[str, Any]:
    vf: dict[str, Any] = doc(run, step)["vfs"][index]
    return vf


def test_set_then_vfctl_and_ip_agree(run: dict[str, Any]) -> None:
    assert rc(run, "set") == 0, rd(run, "set.err")
    assert doc(run, "set")["changed"] is True
    ip = ip_vfs(rd(run, "show.ip"))[0]
    assert ip == {
        "mac": MAC, "vlan": 100, "qos": 3, "spoofchk": False, "trust": True,
        "link_state": "auto", "max_tx_rate": 0,
    }  # fmt: skip
    vf = shown(run, "show", 0)
    assert {k: vf[k] for k in ip} == ip


def test_second_identical_set_changes_nothing(run: dict[str, Any]) -> None:
    assert rc(run, "again") == 0, rd(run, "again.err")
    d = doc(run, "again")
    assert d["changed"] is False and d["actions"] == []
    assert rd(run, "again.ip") == rd(run, "show.ip")


@pytest.mark.parametrize(
    ("step", "words"),
    [("bad_vlan", "invalid VLAN 5000"), ("bad_mac", "multicast address cannot be a VF MAC")],
)
def test_invalid_values_refused_before_any_write(
    run: dict[str, Any], step: str, words: str
) -> None:
    assert rc(run, step) == 2
    d = doc(run, step)
    assert d["actions"] == [] and d["error"]["kind"] == "invalid" and words in d["error"]["message"]
    assert rd(run, f"{step}.ip") == rd(run, "show.ip")


@pytest.mark.parametrize("step", sorted(IGB_REFUSALS))
def test_igb_refusals_match_what_iproute2_gets(run: dict[str, Any], step: str) -> None:
    ip_says, vfctl_says = IGB_REFUSALS[step]
    assert rc(run, f"ip_{step}") != 0 and ip_says in rd(run, f"ip_{step}.err")
    assert rc(run, step) == 5
    d = doc(run, step)
    assert d["changed"] is False and vfctl_says in d["error"]["message"]
    assert "ROLLBACK INCOMPLETE" not in d["error"]["message"]
    assert ip_vfs(rd(run, f"{step}.ip"))[1] == ip_vfs(rd(run, "show.ip"))[1]  # VF 1 untouched


def test_8021ad_is_refused_and_changes_nothing(run: dict[str, Any]) -> None:
    # igb only does 802.1Q; iproute2 gets EPROTONOSUPPORT (pyroute2's encoding gets EINVAL)
    assert rc(run, "ip_qinq") != 0 and "Protocol not supported" in rd(run, "ip_qinq.err")
    assert rc(run, "qinq") == 5 and doc(run, "qinq")["changed"] is False
    assert ip_vfs(rd(run, "qinq.ip"))[1] == ip_vfs(rd(run, "show.ip"))[1]


def test_max_tx_rate_once_the_pf_has_carrier(run: dict[str, Any]) -> None:
    assert rd(run, "carrier").strip() == "1"
    assert rc(run, "max_up") == 0, rd(run, "max_up.err")
    assert ip_vfs(rd(run, "max_up.ip"))[1]["max_tx_rate"] == 100
    assert shown(run, "show_up", 1)["max_tx_rate"] == 100


def test_raw_dump_decoder_equals_pyroute2_on_the_kernel(run: dict[str, Any]) -> None:
    got = json.loads(rd(run, "rtnl.json") or "{}")
    assert set(got) == {"1", "9"}, rd(run, "rtnl.err")
    for mask, d in got.items():
        assert d["mine"] == d["ref"], mask
        vfs = d["mine"][run["nd"]]
        assert len(vfs) == 2 and vfs[0]["mac"] == MAC and vfs[0]["vlan"] == 100, vfs
