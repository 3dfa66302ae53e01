"""`vfctl undo` of attach/detach against the real isolated libvirtd: the domain's persistent
XML comes back exactly as it was before the run (the devices, byte for byte)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_libvirt_cli import INACTIVE, SimHost, held, sim  # noqa: F401  (the sim fixture)

pytestmark = pytest.mark.libvirtd


def test_undo_attach_and_detach_restore_the_domain_xml(
    sim: SimHost,  # noqa: F811
    make_domain: Callable[..., Any],
) -> None:
    dom = make_domain()
    vm = dom.name()
    xml0 = dom.XMLDesc(INACTIVE)
    done = sim.json("attach", vm, sim.pf, "vf2", "--mode", "interface", "--vlan", "42")
    assert held(dom) == [("interface", sim.vfs[2])]
    undo = sim.json("undo", done["history_id"])
    assert [a["op"] for a in undo["actions"]] == ["libvirt.detach"]
    assert dom.XMLDesc(INACTIVE) == xml0

    sim.json("attach", vm, sim.pf, "vf1")
    xml1 = dom.XMLDesc(INACTIVE)
    gone = sim.json("detach", vm, sim.pf, "vf1")
    assert held(dom) == []
    back = sim.json("undo", gone["history_id"])
    assert [a["op"] for a in back["actions"]] == ["libvirt.attach"]
    assert dom.XMLDesc(INACTIVE) == xml1  # the same element, in the same place


def test_undo_refused_after_the_domain_changed(
    sim: SimHost,  # noqa: F811
    make_domain: Callable[..., Any],
) -> None:
    dom = make_domain()
    done = sim.json("attach", dom.name(), sim.pf, "vf3")
    sim.json("detach", dom.name(), sim.pf, "vf3")
    xml = dom.XMLDesc(INACTIVE)
    r = sim.run("undo", done["history_id"], "--json")
    assert r.returncode == 4, r.stderr
    assert "attached_to" in r.stderr and dom.XMLDesc(INACTIVE) == xml


def test_metrics_name_the_domain_holding_a_vf(
    sim: SimHost,  # noqa: F811
    make_domain: Callable[..., Any],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    dom = make_domain()
    sim.json("attach", dom.name(), sim.pf, "vf0")
    r = sim.run("metrics")
    assert r.returncode == 0, r.stderr
    fams = {f.name: f for f in text_string_to_metric_families(r.stdout)}
    vms = {s.labels["address"]: s.labels["vm"] for s in fams["vfctl_vf_info"].samples}
    assert vms[sim.vfs[0]] == f"libvirt:{dom.name()}" and vms[sim.vfs[1]] == ""
