"""`vfctl metrics`: the exposition is checked by prometheus_client's own text parser (the one
Prometheus' Python clients share), not by string matching alone."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from simcli import SimHost, pf_by_driver

from vfctl import metrics
from vfctl.discover import discover
from vfctl.host.open import open_host
from vfctl.model import Attachment


def parse(text: str) -> dict[str, Any]:
    """family name → (type, [(sample name, labels, value)]); raises on invalid exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = (fam.type, [(s.name, s.labels, s.value) for s in fam.samples])
    return out


COUNTS = {"rx_packets": 11, "tx_packets": 12, "rx_bytes": 1300, "tx_bytes": 1400,
          "broadcast": 5, "multicast": 6, "rx_dropped": 2, "tx_dropped": 1}  # fmt: skip


def test_metrics_of_a_host_parse_and_carry_the_kernel_counters(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")
    assert host("enable", pf["netdev"], "3").code == 0
    assert host("bind", pf["netdev"], "vf1").code == 0
    host.edit_state(lambda st: st.setdefault("vf_stats", {}).update({pf["address"]: {"1": COUNTS}}))
    r = host("metrics")
    assert r.code == 0, r.err
    fams = parse(r.out)
    kind, samples = fams["vfctl_pf_vfs"]
    assert kind == "gauge"
    by_pf = {s[1]["pf"]: s for s in samples}
    assert by_pf[pf["address"]][2] == 3
    assert by_pf[pf["address"]][1] == {"pf": pf["address"], "netdev": pf["netdev"], "driver": "igb"}
    assert {s[1]["pf"]: s[2] for s in fams["vfctl_pf_vfs_max"][1]}[pf["address"]] == 7
    info = {s[1]["vf"]: s[1] for s in fams["vfctl_vf_info"][1] if s[1]["pf"] == pf["address"]}
    assert info["1"]["driver"] == "vfio-pci" and info["0"]["driver"] == "igbvf"
    assert info["1"]["address"] == pf_vf_address(host, pf["netdev"], 1)
    for attr, name, _help in metrics.VF_COUNTERS:
        kind, samples = fams[name.removesuffix("_total")]
        assert kind == "counter"
        got = {s[1]["vf"]: s[2] for s in samples if s[1]["pf"] == pf["address"]}
        assert got == {"0": 0, "1": COUNTS[attr], "2": 0}, name


def pf_vf_address(h: SimHost, pf: str, index: int) -> str:
    return str(h("show", pf, "--json").json()["vfs"][index]["address"])


def test_names_follow_the_conventions(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    assert host("enable", pf, "2").code == 0
    text = host("metrics").out
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types, text
    for name, kind in types.items():
        assert re.fullmatch(r"vfctl_[a-z0-9_]+", name), name
        assert name.endswith("_total") == (kind == "counter"), name
        assert f"# HELP {name} " in text
    assert "vfctl_last_run_timestamp_seconds" in types  # base unit in the name


def test_last_run_metrics_follow_the_history(host: SimHost) -> None:
    assert "vfctl_last_run" not in host("metrics").out  # no run yet: no sample
    pf = pf_by_driver(host, "igb")["netdev"]
    assert host("enable", pf, "2").code == 0
    fams = parse(host("metrics").out)
    assert fams["vfctl_last_run_success"][1][0][2] == 1
    assert fams["vfctl_last_run_timestamp_seconds"][1][0][2] > 1.6e9
    host.faults([{"path": f"netlink/{pf}/vf0/vlan", "errno": "EIO"}])
    assert host("set", pf, "vf0", "--vlan", "5").code == 5
    assert parse(host("metrics").out)["vfctl_last_run_success"][1][0][2] == 0


def test_label_values_are_escaped(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    assert host("enable", pf, "1").code == 0
    m = discover(open_host(host.root), {})
    nasty = 'vm "a"\\b\nc'
    p = next(p for p in m.pfs if p.netdev == pf)
    vf = dataclasses.replace(p.vfs[0], attached_to=(Attachment("libvirt", nasty, "u", "hostdev"),))
    m = dataclasses.replace(m, pfs=(dataclasses.replace(p, vfs=(vf,)),))
    text = metrics.render(metrics.families(m, {}, {vf.address: "pool\\1"}, None, None))
    labels = parse(text)["vfctl_vf_info"][1][0][1]
    assert labels["vm"] == f"libvirt:{nasty}" and labels["pool"] == "pool\\1"
    assert "\nc" not in text.split("vfctl_vf_info{", 1)[1].split("}", 1)[0]


def test_drift_metrics_per_profile_key(host: SimHost, tmp_path: Path) -> None:
    pf = pf_by_driver(host, "igb")
    prof = tmp_path / "p.yaml"
    prof.write_text(
        f"version: 1\npfs:\n  - match: {{netdev: {pf['netdev']}}}\n    total-vfs: 2\n"
        "    vfs:\n      - id: 1\n        vlan-id: 7\n"
    )
    assert host("apply", str(prof)).code == 0
    assert host("set", pf["netdev"], "vf1", "--vlan", "8").code == 0
    fams = parse(host("metrics", "--profile", str(prof)).out)
    drift = {(s[1]["vf"], s[1]["key"]): s[2] for s in fams["vfctl_drift"][1]}
    assert drift == {("", "total-vfs"): 0, ("1", "vlan-id"): 1}
    assert fams["vfctl_drift_keys"][1] == [("vfctl_drift_keys", {"profile": str(prof)}, 1)]


def test_textfile_is_written_atomically_and_safely(host: SimHost, tmp_path: Path) -> None:
    out = tmp_path / "textfile"
    out.mkdir()
    (out / "vfctl.prom").write_text("old\n")
    inode = (out / "vfctl.prom").stat().st_ino
    r = host("metrics", "--textfile", str(out))
    assert r.code == 0, r.err
    assert r.out == ""
    assert sorted(os.listdir(out)) == ["vfctl.prom"]  # no temporary file left behind
    f = out / "vfctl.prom"
    assert f.stat().st_ino != inode and (f.stat().st_mode & 0o777) == 0o644  # renamed in
    parse(f.read_text())
    link = tmp_path / "link"
    link.symlink_to(out)
    assert host("metrics", "--textfile", str(link)).code == 2
    assert host("metrics", "--textfile", str(tmp_path / "missing")).code == 3  # not found


def test_a_broken_persisted_profile_or_history_costs_only_its_part(host: SimHost) -> None:
    pf = pf_by_driver(host, "igb")["netdev"]
    assert host("enable", pf, "1").code == 0
    persisted = host.root / "etc/vfctl/profile.yaml"
    persisted.parent.mkdir(parents=True, exist_ok=True)
    persisted.write_text("version: 1\npfs:\n  - match: {netdev: nosuch0}\n    total-vfs: 1\n")
    hist = host.root / "var/lib/vfctl/history.jsonl"
    hist.unlink()
    hist.symlink_to("/etc/passwd")
    r = host("metrics")
    assert r.code == 0, r.err
    assert "drift of" in r.err and "symlink" in r.err
    fams = parse(r.out)
    assert fams["vfctl_drift_error"][1] == [("vfctl_drift_error", {"profile": str(persisted)}, 1)]
    assert "vfctl_last_run_success" not in fams and fams["vfctl_pf_vfs"][1]
    assert host("metrics", "--profile", str(persisted)).code == 2  # asked for: an error
