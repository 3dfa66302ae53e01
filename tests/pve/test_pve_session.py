"""attach/detach against the fake PVE: two discoveries and ONE backend instance per command.

Before the session, the engine created a second ProxmoxBackend (through its factory) to run
the actions the first one had planned; now the planning instance executes them.
"""

from __future__ import annotations

from clirun import counting
from pvecli import PF, Pve


def test_attach_and_detach_discover_twice_and_connect_once(pve: Pve) -> None:
    for verb in ("attach", "detach"):
        with (
            counting("vfctl.discover", "discover") as found,
            counting("vfctl.backends", "create") as made,
        ):
            r = pve(verb, "101", PF, "vf1", "--json")
        assert r.code == 0, r.err
        assert r.json()["changed"] is True and r.json()["error"] is None
        assert found.calls == 2, verb  # plan, then the model verify and history share
        assert made.calls == 1, verb  # the instance that planned is the one that executed


def test_list_discovers_once_and_connects_once(pve: Pve) -> None:
    with (
        counting("vfctl.discover", "discover") as found,
        counting("vfctl.backends", "create") as made,
    ):
        r = pve("list", "--json")
    assert r.code == 0, r.err
    assert found.calls == 1 and made.calls == 1
