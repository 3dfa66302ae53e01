"""`vfctl undo` of `vfctl pool create` against the fake PVE cluster: the cluster mapping is as
it was (absent, or with only the other node's entries) and the VFs are as before."""

from __future__ import annotations

from typing import Any

from test_pve_pool import PF, Cluster, cluster, template  # noqa: F401  (fixtures)


def vf_state(c: Cluster, node: str) -> list[dict[str, Any]]:
    keys = ("address", "driver", "driver_override", "vlan", "trust")
    return [{k: v[k] for k in keys} for v in c.json(node, "show", PF)["vfs"]]


def test_undo_pool_create_on_one_node_keeps_the_others(cluster: Cluster) -> None:  # noqa: F811
    cluster.json("pve2", "pool", "create", "tenant", PF, "vf1")
    other = cluster.mapping("tenant")
    before = vf_state(cluster, "pve1")
    done = cluster.json("pve1", "pool", "create", "tenant", PF, "vf0-2", "--vlan", "42")
    assert done["changed"] is True and "pve1" in cluster.entries("tenant")
    undone = cluster.json("pve1", "undo", done["history_id"])
    assert undone["changed"] is True
    assert cluster.mapping("tenant") == other  # pve2's entry untouched, pve1's gone
    assert vf_state(cluster, "pve1") == before
