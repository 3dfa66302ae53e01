"""`vfctl undo` of `vfctl pool create` on the real isolated libvirtd: the hostdev network is
gone again and the VFs have their drivers and settings from before."""

from __future__ import annotations

from typing import Any

import pytest
from test_libvirt_pool import PF, Lab, lab  # noqa: F401  (the module's host + daemon fixture)

pytestmark = pytest.mark.libvirtd


def vf_state(lab: Lab) -> list[dict[str, Any]]:  # noqa: F811
    keys = ("address", "driver", "driver_override", "vlan", "trust", "spoofchk")
    return [{k: v[k] for k in keys} for v in lab.json("show", PF)["vfs"]]


def test_undo_pool_create(lab: Lab) -> None:  # noqa: F811
    nets, vfs = lab.networks(), vf_state(lab)
    done = lab.json("pool", "create", "undo-me", PF, "vf5-6", "--vlan", "17", "--trust", "on")
    assert done["changed"] is True and "undo-me" in lab.networks()
    assert vf_state(lab) != vfs
    undone = lab.json("undo", done["history_id"])
    assert undone["changed"] is True and undone["undoes"] == done["history_id"]
    assert lab.networks() == nets
    assert vf_state(lab) == vfs
