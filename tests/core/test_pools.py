"""The pure side of pools: settings as stored in VM-manager objects, member states, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfctl import pools
from vfctl.errors import RefusedError, UsageError
from vfctl.model import PF, VF, Attachment, HostModel, VFSettings
from vfctl.pools import PoolSettings, PoolView

settings = st.builds(
    PoolSettings,
    vlan=st.none() | st.integers(1, 4094),
    qos=st.none(),
    trust=st.none() | st.booleans(),
    spoofchk=st.none() | st.booleans(),
    mac=st.none() | st.just("auto"),
    max_tx_rate=st.none() | st.integers(0, 10**6),
)


@given(settings)
def test_settings_round_trip_through_the_stored_text(s: PoolSettings) -> None:
    assert PoolSettings.decode(s.encode()) == s


@pytest.mark.parametrize(
    "text",
    [None, "", "vlan=abc", "vlan=99999", "trust=maybe", "mac=52:54:00:00:00:01", "x=1,,=",
     "vlan=1\nvlan=2", "qos=3"],
)  # fmt: skip
def test_stored_text_that_vfctl_would_not_write_is_not_trusted(text: str | None) -> None:
    s = PoolSettings.decode(text)
    assert s.mac in (None, "auto") and (s.vlan is None or 0 <= s.vlan <= 4094)
    assert s.qos is None  # qos without a VLAN is refused as a whole


@pytest.mark.parametrize(
    "bad",
    [PoolSettings(mac="52:54:00:00:00:01"), PoolSettings(vlan=4095), PoolSettings(qos=3),
     PoolSettings(max_tx_rate=-1)],
)  # fmt: skip
def test_validate_refuses(bad: PoolSettings) -> None:
    with pytest.raises(UsageError):
        pools.validate(bad)


def test_merge_keeps_what_the_new_settings_leave_out() -> None:
    old = PoolSettings(vlan=5, trust=True)
    assert pools.merge(old, PoolSettings(vlan=7)) == PoolSettings(vlan=7, trust=True)


def vf(i: int, bus: int = 1, **kw: object) -> VF:
    base: dict[str, object] = dict(
        index=i, address=f"0000:{bus:02x}:10.{i}", driver="vfio-pci", driver_override="vfio-pci",
        netdev=None, iommu_group=30 + i, vendor_id="8086", device_id="10ed",
        settings=VFSettings(vlan=42, trust=False),
    )  # fmt: skip
    base.update(kw)
    return VF(**base)  # type: ignore[arg-type]


def pf(bus: int, vfs: tuple[VF, ...]) -> PF:
    return PF(
        address=f"0000:{bus:02x}:00.0", netdev=f"eth{bus}", netdevs=(f"eth{bus}",),
        driver="ixgbe", vendor_id="8086", device_id="10fb", class_code="020000", name=None,
        total_vfs=8, cap_total_vfs=8, initial_vfs=8, num_vfs=len(vfs), vf_offset=128,
        vf_stride=2, vf_device_id="10ed", autoprobe=True, numa_node=None, iommu_group=1,
        link=None, ari=False, vfs=vfs,
    )  # fmt: skip


held = Attachment("libvirt", "web", "uuid", "interface", live=True, config=False)
A = pf(1, (vf(0), vf(1, attached_to=(held,)), vf(2, settings=VFSettings(vlan=7)),
           vf(3, driver="ixgbevf")))  # fmt: skip
B = pf(2, (vf(0, bus=2),))
MODEL = HostModel((A, B))
VIEW = PoolView("tenant", "libvirt", A.address, (*(v.address for v in A.vfs), "0000:09:10.0"),
                PoolSettings(vlan=42))  # fmt: skip


def test_member_states_free_held_missing_and_drift() -> None:
    got = {s.address: (s.state, s.held_by, s.drift) for s in pools.member_states(VIEW, MODEL, "h")}
    assert got[A.vfs[0].address] == ("free", None, ())
    assert got[A.vfs[1].address] == ("held", "web", ())
    assert got[A.vfs[2].address] == ("free", None, ("vlan is 7, pool wants 42",))
    assert got[A.vfs[3].address][2] == ("driver is ixgbevf, pool wants vfio-pci",)
    assert got["0000:09:10.0"][0] == "missing"


def test_refusals() -> None:
    with pytest.raises(RefusedError, match="held by web"):
        pools.check_removable(VIEW, MODEL, [A.vfs[1].address])
    pools.check_removable(VIEW, MODEL, [A.vfs[0].address])  # a free member may leave
    with pytest.raises(RefusedError, match="already in pool theirs"):
        pools.in_other_pool({A.vfs[0].address: "theirs"}, "tenant", [A.vfs[0].address])
    pools.in_other_pool({A.vfs[0].address: "tenant"}, "tenant", [A.vfs[0].address])
    with pytest.raises(RefusedError, match="one PF per pool"):
        pools.check_same_pf(VIEW, MODEL, B)
    pools.check_same_pf(VIEW, MODEL, A)
    with pytest.raises(UsageError):
        pools.check_name("9lives")


def test_stale_entries() -> None:
    view = PoolView("t", "proxmox", None, (A.vfs[0].address, A.vfs[1].address, "0000:09:10.0"),
                    recorded={A.vfs[0].address: (30, "8086:0001"),
                              A.vfs[1].address: (99, None)})  # fmt: skip
    sub = {A.vfs[0].address: "8086:0002"}
    assert pools.stale(view, MODEL, sub) == [
        (A.vfs[0].address, "subsystem id recorded 8086:0001, now 8086:0002"),
        (A.vfs[1].address, "IOMMU group recorded 99, now 31"),
        ("0000:09:10.0", "no such VF on this host any more"),
    ]
