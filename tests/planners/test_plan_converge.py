"""Profile convergence planned from a hand-made model: resolve (located problems), resize,
bind, settings and no-op — the same pure planners and in-use rules as the commands."""

from __future__ import annotations

from dataclasses import replace

import pytest
from planmodels import link, model, pf, vf

from vfctl import converge, vfsettings
from vfctl.errors import RefusedError
from vfctl.pci import address
from vfctl.profile import loads
from vfctl.profile_doc import ProfileInvalid
from vfctl.profile_resolve import resolve


def planned(text: str, m, **kw) -> converge.Plan:
    return converge.plan(m, resolve(loads(text), m), None, attach=False, **kw)


def ops(p: converge.Plan) -> dict[str, list[str]]:
    return {k: [a.detail for a in v] for k, v in p.phases.items() if v}


PROFILE = "version: 1\npfs:\n  - match: {pci: '0000:01:00.0'}\n"


def test_profile_matching_the_host_plans_nothing() -> None:
    p = pf(2, vfs=(vf(0, driver="vfio-pci", driver_override="vfio-pci", netdev=None), vf(1)))
    text = PROFILE + "    total-vfs: 2\n    vfs:\n      - {id: 0, driver: vfio-pci}\n"
    assert planned(text, model(p)).actions == []


def test_resize_goes_through_zero_and_binds_the_predicted_vfs() -> None:
    p = pf(2)
    text = PROFILE + "    total-vfs: 4\n    vfs:\n      - {id: 3, driver: vfio-pci}\n"
    plan = planned(text, model(p))
    assert ops(plan) == {"numvfs": ["2 -> 0", "0 -> 4"], "bind": ["none -> vfio-pci"]}
    (bind,) = plan.phases["bind"]
    assert bind.params["address"] == address.vf_address(p.address, 128, 2, 3)
    assert bind.params["group"] is None  # a VF not created yet has no group to check


def test_settings_use_the_models_identity_for_auto_macs() -> None:
    p = pf(1)
    m = replace(model(p), host_id="0123456789abcdef")
    text = PROFILE + "    vfs:\n      - {id: 0, mac-address: auto, trust: true}\n"
    plan = planned(text, m)
    want = vfsettings.auto_mac("0123456789abcdef", p.address, 0)
    macs = [a.params.get("settings", {}).get("mac") for a in plan.phases["settings"]]
    assert want in macs and list(ops(plan)) == ["settings"]


def test_default_driver_takes_the_override_away() -> None:
    p = pf(1, vfs=(vf(0, driver="vfio-pci", driver_override="vfio-pci", netdev=None),))
    text = PROFILE + "    vfs:\n      - {id: 0, driver: default}\n"
    assert ops(planned(text, model(p))) == {"bind": ["vfio-pci -> default"]}


def test_resize_refused_by_the_same_in_use_rule_as_enable() -> None:
    p = pf(2)
    m = model(p, links=(link("enp1s0f0v1", master="bond0"), link("bond0", kind="bond")))
    with pytest.raises(RefusedError, match="netdev enp1s0f0v1 is a member of bond bond0") as e:
        planned(PROFILE + "    total-vfs: 3\n", m)
    assert e.value.override == "--force"


def test_unknown_pf_and_too_many_vfs_are_located_problems() -> None:
    text = (
        "version: 1\npfs:\n"
        "  - match: {pci: '0000:01:00.0'}\n    total-vfs: 99\n"
        "  - match: {netdev: nope0}\n"
    )
    m = model(pf(0))
    with pytest.raises(ProfileInvalid) as e:
        resolve(loads(text, "p.yaml"), m)
    msgs = [str(x) for x in e.value.problems]
    assert any(s.startswith("p.yaml:4:") and "at most 63 VFs" in s for s in msgs)
    assert any(s.startswith("p.yaml:5:") and "unknown PF" in s and "nope0" in s for s in msgs)
