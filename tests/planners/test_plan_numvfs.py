"""plan_numvfs / plan_autoprobe as pure functions: hand-made models in, actions or refusals out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from planmodels import (
    PF_ADDR,
    attached,
    holder,
    link,
    model,
    pf,
    pool,
    reserved,
    vf,
    with_settings,
)

from vfctl.errors import HostError, RefusedError, UsageError
from vfctl.plan_host import default_timeout, plan_autoprobe, plan_numvfs


def details(acts: list) -> list[str]:
    return [a.detail for a in acts]


def test_same_count_is_no_action_even_with_users() -> None:
    p = pf(2, vfs=(vf(0, attached_to=attached()), vf(1)))
    m = model(p, vfio=(holder(41),))
    assert plan_numvfs(m, p, 2) == []


def test_enable_from_zero_is_one_write_with_its_undo() -> None:
    p = pf(0)
    (a,) = plan_numvfs(model(p), p, 4)
    assert (a.op, a.target, a.detail) == ("sriov.numvfs", f"{PF_ADDR} sriov_numvfs", "0 -> 4")
    assert a.params == {"pf": PF_ADDR, "num": 4, "timeout": default_timeout(4), "probe": True}
    assert a.undo is not None and a.undo.params["num"] == 0 and "restore" not in a.undo.params


def test_a_different_nonzero_count_goes_through_zero() -> None:
    p = pf(8)
    acts = plan_numvfs(model(p), p, 4)
    assert details(acts) == ["8 -> 0", "0 -> 4"]
    assert [a.params["num"] for a in acts] == [0, 4]
    assert acts[0].params["timeout"] == acts[1].params["timeout"] == default_timeout(8)


def test_explicit_timeout_is_kept_in_both_directions() -> None:
    p = pf(0)
    (a,) = plan_numvfs(model(p), p, 3, timeout=2.5)
    assert a.params["timeout"] == 2.5 and a.undo is not None and a.undo.params["timeout"] == 2.5


def test_above_totalvfs_names_the_driver_cap() -> None:
    p = pf(0, total_vfs=7, cap_total_vfs=8)
    with pytest.raises(UsageError, match="8 VFs requested but sriov_totalvfs is 7; the capa"):
        plan_numvfs(model(p), p, 8)


def test_above_totalvfs_without_a_higher_capability_says_only_the_limit() -> None:
    p = pf(0, total_vfs=7, cap_total_vfs=7)
    with pytest.raises(UsageError) as e:
        plan_numvfs(model(p), p, 8)
    assert e.value.message.endswith("sriov_totalvfs is 7")


@pytest.mark.parametrize("n", [-1, 65536])
def test_count_outside_the_register_is_invalid(n: int) -> None:
    p = pf(0)
    with pytest.raises(UsageError, match="0 to 65535"):
        plan_numvfs(model(p), p, n)


def test_pf_without_driver_cannot_create_vfs() -> None:
    p = pf(0, driver=None)
    with pytest.raises(HostError, match=r"no driver bound.*ENOENT"):
        plan_numvfs(model(p), p, 2)


def test_unsound_pf_is_refused_before_anything_else() -> None:
    p = pf(0, problems=("sriov_numvfs reads '-5': not a VF count (0-65535); treated as 0",))
    with pytest.raises(RefusedError, match="until the kernel reports sane values"):
        plan_numvfs(model(p), p, 0)


def test_autoprobe_phase_comes_first_and_vfs_are_not_awaited_for_a_driver() -> None:
    p = pf(0)
    acts = plan_numvfs(model(p), p, 3, autoprobe=False)
    assert [a.op for a in acts] == ["sysfs.write", "sriov.numvfs"]
    assert acts[0].params == {"path": f"sys/bus/pci/devices/{PF_ADDR}/sriov_drivers_autoprobe",
                              "value": "0"}  # fmt: skip
    assert acts[0].undo is not None and acts[0].undo.params["value"] == "1"
    assert acts[1].params["probe"] is False


def test_autoprobe_already_as_asked_or_unknown_plans_nothing() -> None:
    assert plan_autoprobe(pf(0), True) == []
    assert plan_autoprobe(pf(0), None) == []
    assert plan_autoprobe(pf(0, autoprobe=None), False) == []


def test_removal_undo_restores_drivers_and_non_default_settings() -> None:
    vfs = (
        with_settings(vf(0), mac="02:00:00:00:00:01", vlan=0, vlan_proto="802.1ad", trust=False),
        replace(vf(1, driver="vfio-pci", driver_override="vfio-pci", netdev=None),
                settings=with_settings(vf(1), vlan=100, qos=0, vlan_proto="802.1ad").settings),
    )  # fmt: skip
    p = pf(2, vfs=vfs)
    (a,) = plan_numvfs(model(p), p, 0)
    back = a.undo.params if a.undo else {}
    assert back["num"] == 2 and back["pf_netdev"] == "enp1s0f0"
    assert back["restore"] == [
        {"index": 0, "driver": "ixgbevf", "override": None,
         "settings": {"mac": "02:00:00:00:00:01"}},
        {"index": 1, "driver": "vfio-pci", "override": "vfio-pci",
         "settings": {"vlan": 100, "vlan_proto": "802.1ad"}},
    ]  # fmt: skip


def test_removal_undo_recreates_under_the_autoprobe_the_vfs_had() -> None:
    p = pf(2, autoprobe=True)
    acts = plan_numvfs(model(p), p, 0, was_autoprobe=False)  # a profile turned it on meanwhile
    assert acts[0].undo is not None
    assert acts[0].undo.params["autoprobe"] is False and acts[0].undo.params["probe"] is False


def test_vfio_holder_blocks_even_force() -> None:
    p = pf(2, vfs=(vf(0), vf(1, driver="vfio-pci", netdev=None, held_by=reserved("vm101"))))
    p = replace(p, vfs=(p.vfs[0], replace(p.vfs[1], held_by=replace(reserved("vm101"), pid=4242))))
    m = model(p, vfio=(holder(41),))
    with pytest.raises(RefusedError) as e:
        plan_numvfs(m, p, 0, force=True, force_host_nic=True)
    msg = e.value.message
    assert "held open" in msg and "pid 4242 (qemu-system-x86, VM vm101)" in msg
    assert p.vfs[1].address in msg and "stop those processes" in msg


def test_attached_vf_needs_force() -> None:
    p = pf(2, vfs=(vf(0), vf(1, attached_to=attached("vm105"))))
    with pytest.raises(RefusedError, match=r"attached to proxmox VM vm105 .*--force to remove"):
        plan_numvfs(model(p), p, 0)
    assert plan_numvfs(model(p), p, 0, force=True)


def test_vf_netdev_up_with_address_is_in_use() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0", up=True, addresses=("198.51.100.7/24",)),))
    with pytest.raises(RefusedError, match=r"netdev enp1s0f0v0 is up with 198\.51\.100\.7/24"):
        plan_numvfs(m, p, 0)


def test_vf_netdev_down_with_address_is_in_use_too() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0", up=False, addresses=("198.51.100.7/24",)),))
    with pytest.raises(RefusedError) as e:
        plan_numvfs(m, p, 3)
    assert "enp1s0f0v0 is down but has 198.51.100.7/24" in e.value.message
    assert p.vfs[0].address in e.value.message
    assert plan_numvfs(m, p, 3, force=True)


def test_vf_netdev_up_without_address_or_upper_is_free() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0", up=True),))
    assert details(plan_numvfs(m, p, 0)) == ["1 -> 0"]


def test_bond_member_vf_needs_force() -> None:
    p = pf(2)
    m = model(p, links=(link("enp1s0f0v1", master="bond0"), link("bond0", kind="bond", up=True)))
    with pytest.raises(RefusedError, match="netdev enp1s0f0v1 is a member of bond bond0"):
        plan_numvfs(m, p, 0)
    assert plan_numvfs(m, p, 0, force=True)


def test_vlan_on_a_vf_netdev_needs_force() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0"), link("vf0.100", kind="vlan", link="enp1s0f0v0")))
    with pytest.raises(RefusedError, match=r"has vlan vf0\.100 on top"):
        plan_numvfs(m, p, 0)


def test_vf_in_the_default_route_bridge_needs_force_host_nic_not_force() -> None:
    p = pf(2)
    links = (
        link("enp1s0f0v0", up=True, master="vmbr0"),
        link("vmbr0", kind="bridge", up=True, addresses=("192.0.2.10/24",), default_route=True),
    )
    m = model(p, links=links)
    for force in (False, True):
        with pytest.raises(RefusedError) as e:
            plan_numvfs(m, p, 0, force=force)
        msg = e.value.message
        assert "VF 0" in msg and "enp1s0f0v0 carries the host's default route (via vmbr0)" in msg
        assert "--force-host-nic" in msg
    assert details(plan_numvfs(m, p, 0, force_host_nic=True)) == ["2 -> 0"]


def test_pf_carrying_the_default_route_needs_force_host_nic_even_to_enable() -> None:
    p = pf(0)
    m = model(p, links=(link("enp1s0f0", up=True, default_route=True),))
    with pytest.raises(RefusedError, match="enp1s0f0 carries the host's default route; chan"):
        plan_numvfs(m, p, 4, force=True)
    assert plan_numvfs(m, p, 4, force_host_nic=True)


def test_pool_entries_unmanaged_block_even_force_managed_need_force() -> None:
    p = pf(1, vfs=(vf(0, pool=pool(managed=False)),))
    with pytest.raises(RefusedError, match="remove the entry in PVE first"):
        plan_numvfs(model(p), p, 0, force=True)
    q = pf(1, vfs=(vf(0, pool=pool(managed=True)),))
    with pytest.raises(RefusedError, match="entry of PCI mapping pool pool-a"):
        plan_numvfs(model(q), q, 0)
    assert plan_numvfs(model(q), q, 0, force=True)


def test_reservation_in_start_window_needs_force() -> None:
    p = pf(1, vfs=(vf(0, held_by=reserved("vm102")),))
    with pytest.raises(RefusedError, match=r"reserved by VM vm102 \(starting\)"):
        plan_numvfs(model(p), p, 0)


def test_planner_refuses_to_decide_without_in_use_facts() -> None:
    p = pf(1)
    with pytest.raises(RuntimeError, match="in-use facts were not collected"):
        plan_numvfs(model(p, collected=False), p, 0)
