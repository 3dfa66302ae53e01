"""Day-to-day operation on the real igb driver: `vfctl metrics` reads the kernel's per-VF
statistics (IFLA_VF_STATS) and agrees with `ip -s link`; history and undo on a real host.

igb has no ndo_get_vf_stats, so the kernel's rtnl_fill_vfinfo() (net/core/rtnetlink.c) sends
the IFLA_VF_STATS nest filled with zeros: the counters must be present, per VF, and equal to
what iproute2 prints from the same attribute.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vfctl import metrics

from .runner import GUEST_SHARE, Lab

SCRIPT = r"""
export VFCTL_BACKEND=none
O=__SHARE__/o; mkdir -p $O
PF=$(ls -d /sys/bus/pci/drivers/igb/0000:* | sort | head -1); PF=${PF##*/}
ND=$(ls /sys/bus/pci/devices/$PF/net | head -1)
echo $PF > $O/pf; echo $ND > $O/nd
step() { n=$1; shift; "$@" > $O/$n.out 2> $O/$n.err; echo $? > $O/$n.rc; }
step enable vfctl enable $ND 2 --json
ip link set $ND up
step metrics vfctl metrics
ip -s -s link show $ND > $O/ips
step set vfctl set $ND vf1 --vlan 7 --trust on --json
ip -d link show $ND > $O/set.ip
step undo_set vfctl undo last --json
ip -d link show $ND > $O/undone.ip
step undo_enable vfctl undo $(python3 -c "import json,sys; print(json.load(open('$O/enable.out'))['history_id'])") --json
cat /sys/bus/pci/devices/$PF/sriov_numvfs > $O/numvfs
step history vfctl history --json
"""


@pytest.fixture(scope="module")
def run(lab: Lab) -> dict[str, Any]:
    lab.run(SCRIPT.replace("__SHARE__", GUEST_SHARE), timeout=600, check=True, retry_on_hang=True)
    d: Path = lab.share / "o"
    return {"dir": d, "nd": (d / "nd").read_text().strip(), "pf": (d / "pf").read_text().strip()}


def rd(run: dict[str, Any], name: str) -> str:
    p: Path = run["dir"] / name
    return p.read_text() if p.exists() else ""


def ok(run: dict[str, Any], step: str) -> Any:
    assert rd(run, f"{step}.rc").strip() == "0", rd(run, f"{step}.err")
    out = rd(run, f"{step}.out")
    return json.loads(out) if out.lstrip().startswith("{") else out


def ip_vf_stats(text: str) -> dict[int, dict[str, int]]:
    """Per-VF counters from `ip -s -s link show PF`: the RX/TX rows under each `vf N` line."""
    out: dict[int, dict[str, int]] = {}
    blocks = re.split(r"^\s+vf (\d+) ", text, flags=re.M)
    for i in range(1, len(blocks), 2):
        body = blocks[i + 1]
        rx = re.search(r"RX: bytes\s+packets\s+mcast\s+bcast(?:\s+dropped)?\s*\n\s*([\d ]+)", body)
        tx = re.search(r"TX: bytes\s+packets(?:\s+dropped)?\s*\n\s*([\d ]+)", body)
        assert rx and tx, body
        r = [int(x) for x in rx[1].split()]
        t = [int(x) for x in tx[1].split()]
        d = {"rx_bytes": r[0], "rx_packets": r[1], "multicast": r[2], "broadcast": r[3]}
        d.update({"tx_bytes": t[0], "tx_packets": t[1]})
        if len(r) > 4:
            d["rx_dropped"] = r[4]
        if len(t) > 2:
            d["tx_dropped"] = t[2]
        out[int(blocks[i])] = d
    return out


def test_metrics_carry_the_kernels_vf_statistics(run: dict[str, Any]) -> None:
    text = ok(run, "metrics")
    fams = {f.name: f for f in text_string_to_metric_families(text)}  # a valid exposition
    pf = run["pf"]
    vfs = [s for s in fams["vfctl_pf_vfs"].samples if s.labels["pf"] == pf]
    assert [s.value for s in vfs] == [2] and vfs[0].labels["driver"] == "igb"
    info = [s.labels for s in fams["vfctl_vf_info"].samples if s.labels["pf"] == pf]
    assert [(x["vf"], x["driver"]) for x in info] == [("0", "igbvf"), ("1", "igbvf")]
    ip = ip_vf_stats(rd(run, "ips"))
    assert sorted(ip) == [0, 1], rd(run, "ips")
    for attr, name, _help in metrics.VF_COUNTERS:
        fam = fams[name.removesuffix("_total")]
        assert fam.type == "counter"
        got = {int(s.labels["vf"]): s.value for s in fam.samples if s.labels["pf"] == pf}
        assert sorted(got) == [0, 1], name  # one sample per VF: the attribute was read
        for vf, counters in ip.items():
            if attr in counters:
                assert got[vf] == counters[attr], (name, vf)


def test_history_and_undo_on_the_real_kernel(run: dict[str, Any]) -> None:
    ok(run, "enable")
    assert ok(run, "set")["changed"] is True
    assert re.search(r"vf 1 .*vlan 7", rd(run, "set.ip")) and "trust on" in rd(run, "set.ip")
    undone = ok(run, "undo_set")
    assert [a["op"] for a in undone["actions"]] == ["netlink.vf", "netlink.vf"]
    vf1 = next(ln for ln in rd(run, "undone.ip").splitlines() if re.match(r"\s+vf 1 ", ln))
    assert "vlan" not in vf1 and "trust off" in vf1
    assert ok(run, "undo_enable")["changed"] is True
    assert rd(run, "numvfs").strip() == "0"
    runs = ok(run, "history")["runs"]
    assert [r.get("undoes") is not None for r in runs] == [False, False, True, True]
    assert all(r["success"] for r in runs)
