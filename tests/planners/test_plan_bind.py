"""plan_bind (bind/unbind), group viability and the verify checks, on hand-made models."""

from __future__ import annotations

from dataclasses import replace

import pytest
from planmodels import attached, device, holder, link, model, pf, pool, reserved, vf

from vfctl.errors import HostError, RefusedError
from vfctl.plan_host import plan_bind, verify_driver, verify_numvfs


def test_bind_is_one_driver_action_with_the_way_back() -> None:
    p = pf(2)
    (a,) = plan_bind(model(p), p, [p.vfs[1]], "vfio-pci")
    v = p.vfs[1]
    assert (a.op, a.target, a.detail) == (
        "pci.driver",
        f"{v.address} driver",
        "ixgbevf -> vfio-pci",
    )
    assert a.params == {"address": v.address, "override": "vfio-pci", "expect": "vfio-pci",
                        "group": 41}  # fmt: skip
    assert a.undo is not None
    assert a.undo.params == {"address": v.address, "override": None, "expect": "ixgbevf",
                             "group": 41}  # fmt: skip


def test_already_bound_and_unbind_without_override_plan_nothing() -> None:
    bound = vf(0, driver="vfio-pci", driver_override="vfio-pci", netdev=None)
    p = pf(2, vfs=(bound, vf(1)))
    assert plan_bind(model(p), p, [bound], "vfio-pci") == []
    assert plan_bind(model(p), p, [p.vfs[1]], None) == []


def test_unbind_clears_the_override_and_expects_any_default() -> None:
    bound = vf(0, driver="vfio-pci", driver_override="vfio-pci", netdev=None)
    p = pf(1, vfs=(bound,))
    (a,) = plan_bind(model(p), p, [bound], None)
    assert a.detail == "vfio-pci -> default"
    assert a.params["override"] is None and a.params["expect"] is None


def test_a_group_shared_with_a_host_driver_is_not_viable() -> None:
    p = pf(1, vfs=(vf(0, iommu_group=1),))
    devs = (
        device(p.address, "ixgbe", 1, netdevs=("enp1s0f0",)),
        device("0000:00:01.0", "pcieport", 1, is_bridge=True),
        device(p.vfs[0].address, "ixgbevf", 1),
    )
    with pytest.raises(RefusedError) as e:
        plan_bind(model(p, devices=devs), p, list(p.vfs), "vfio-pci")
    msg = e.value.message
    assert "IOMMU group 1 is not viable" in msg
    assert f"{p.address} (driver ixgbe, netdev enp1s0f0)" in msg
    assert "0000:00:01.0" not in msg  # a bridge in the group is fine


def test_group_peers_bound_together_or_stub_bound_are_viable() -> None:
    p = pf(2, vfs=(vf(0, iommu_group=7), vf(1, iommu_group=7)))
    devs = (
        device(p.vfs[0].address, "ixgbevf", 7),
        device(p.vfs[1].address, "ixgbevf", 7),
        device("0000:05:00.0", "pci-stub", 7),
        device("0000:05:00.1", None, 7),
    )
    assert len(plan_bind(model(p, devices=devs), p, list(p.vfs), "vfio-pci")) == 2
    with pytest.raises(RefusedError, match="not viable"):
        plan_bind(model(p, devices=devs), p, [p.vfs[0]], "vfio-pci")


def test_non_stub_driver_skips_the_group_check() -> None:
    p = pf(1, vfs=(vf(0, iommu_group=1),))
    devs = (device(p.address, "ixgbe", 1),)
    (a,) = plan_bind(model(p, devices=devs), p, list(p.vfs), "uio_pci_generic")
    assert a.params["override"] == "uio_pci_generic"


def test_vf_netdev_with_address_while_down_needs_force() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0", addresses=("198.51.100.7/24",)),))
    with pytest.raises(RefusedError) as e:
        plan_bind(m, p, list(p.vfs), "vfio-pci")
    msg = e.value.message
    assert msg.startswith(f"{p.vfs[0].address} (VF 0 of enp1s0f0): ")
    assert "enp1s0f0v0 has addresses 198.51.100.7/24 (link down)" in msg and "--force" in msg
    assert plan_bind(m, p, list(p.vfs), "vfio-pci", force=True)


def test_bond_member_needs_force_to_bind() -> None:
    p = pf(1)
    m = model(p, links=(link("enp1s0f0v0", up=True, master="bond0"), link("bond0", kind="bond")))
    with pytest.raises(RefusedError, match="enp1s0f0v0 is a member of bond bond0"):
        plan_bind(m, p, list(p.vfs), "vfio-pci")
    assert plan_bind(m, p, list(p.vfs), "vfio-pci", force=True)


def test_bond_carrying_the_default_route_needs_force_host_nic() -> None:
    p = pf(1)
    links = (
        link("enp1s0f0v0", up=True, master="bond0"),
        link("bond0", kind="bond", up=True, master="vmbr0"),
        link("vmbr0", kind="bridge", up=True, default_route=True),
    )
    m = model(p, links=links)
    with pytest.raises(RefusedError) as e:
        plan_bind(m, p, list(p.vfs), "vfio-pci", force=True)
    assert "default route (via vmbr0)" in e.value.message and "--force-host-nic" in e.value.message
    assert plan_bind(m, p, list(p.vfs), "vfio-pci", force_host_nic=True)


def test_unbind_from_vfio_while_held_open_is_refused_even_with_force() -> None:
    bound = vf(0, driver="vfio-pci", driver_override="vfio-pci", netdev=None)
    p = pf(1, vfs=(bound,))
    with pytest.raises(RefusedError, match=r"/dev/vfio/40 is held open by pid 4242 \(qemu"):
        plan_bind(model(p, vfio=(holder(40),)), p, [bound], None, force=True)


def test_attached_held_and_pooled_vfs() -> None:
    p = pf(1, vfs=(vf(0, attached_to=attached("vm101")),))
    with pytest.raises(RefusedError, match="attached to proxmox VM vm101; detach it first"):
        plan_bind(model(p), p, list(p.vfs), "vfio-pci")
    assert plan_bind(model(p), p, list(p.vfs), "vfio-pci", force=True)
    p = pf(1, vfs=(vf(0, held_by=reserved("vm102")),))
    with pytest.raises(RefusedError, match=r"held by VM vm102 \(starting\)"):
        plan_bind(model(p), p, list(p.vfs), "vfio-pci")
    p = pf(1, vfs=(vf(0, pool=pool(managed=False)),))
    with pytest.raises(RefusedError, match="remove the entry in PVE first"):
        plan_bind(model(p), p, list(p.vfs), "vfio-pci", force=True)


def test_driverless_vf_has_nothing_to_take_away() -> None:
    v = vf(0, driver=None, netdev=None, attached_to=attached())
    p = pf(1, vfs=(v,))
    (a,) = plan_bind(model(p), p, [v], "vfio-pci")
    assert a.detail == "none -> vfio-pci"


def test_verify_numvfs_compares_count_and_links() -> None:
    p = pf(2)
    verify_numvfs(model(p), p.address, 2)
    with pytest.raises(HostError, match="numvfs 2, 2 VF links, wanted 3"):
        verify_numvfs(model(p), p.address, 3)
    with pytest.raises(HostError, match="numvfs 2, 1 VF links, wanted 2"):
        verify_numvfs(model(replace(p, vfs=p.vfs[:1])), p.address, 2)


def test_verify_driver_names_what_each_vf_has() -> None:
    p = pf(2, vfs=(vf(0, driver="vfio-pci"), vf(1)))
    verify_driver(model(p), [p.vfs[0].address], "vfio-pci")
    verify_driver(model(p), [p.vfs[1].address], None)  # any default driver
    with pytest.raises(HostError, match="driver ixgbevf, wanted vfio-pci"):
        verify_driver(model(p), [p.vfs[1].address], "vfio-pci")
    with pytest.raises(HostError, match="driver gone"):
        verify_driver(model(p), ["0000:09:00.0"], "vfio-pci")
