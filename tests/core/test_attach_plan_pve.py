"""Proxmox attach/detach planning as pure functions: a literal ``PveFacts`` in, actions out.

The facts are what ``ProxmoxBackend.facts`` fetches (cluster VM list, configs, mappings, this
node's PCI addresses and sysfs ids); no API here. tests/pve runs the same plans against the
fake PVE. PVE's rules these follow: qemu-server ``src/PVE/QemuServer/PCI.pm`` (hostpci0..15,
``parse_hostpci``: ``host=`` or ``mapping=``, ``pcie`` only on q35), pve-manager
``API2/Cluster/Mapping/PCI.pm`` (mapping entries), qemu-server ``API2/Qemu.pm`` (hostpci
changes to a running VM stay pending).
"""

from __future__ import annotations

from typing import Any

import pytest
from attach_facts import held, request, vf

from vfctl.backends.pve_attach import plan_attach, plan_detach
from vfctl.backends.pve_mapping import Pool, parse_mappings
from vfctl.backends.pve_plan import PveFacts
from vfctl.errors import RefusedError, UsageError

NODE = "pve1"
VF3 = "0000:03:10.6"
CONN = {"mode": "token", "node": NODE}
Q35 = {"machine": "q35", "digest": "d"}


def vm(vmid: int, name: str, node: str = NODE, status: str = "stopped") -> dict[str, Any]:
    return {"type": "qemu", "vmid": vmid, "name": name, "node": node, "status": status}


def mapping(
    mid: str,
    *paths: str,
    managed: bool = True,
    node: str = NODE,
    sub: str = ",subsystem-id=8086:000c",
) -> dict[str, Any]:
    desc = "vfctl: eth2 VF 3" if managed else "made by hand"
    entries = [f"node={node},path={p},id=8086:10ed,iommugroup=43{sub}" for p in paths]
    return {"id": mid, "map": entries, "description": desc}


def facts(
    configs: dict[int, dict[str, Any]] | None = None,
    vms: list[dict[str, Any]] | None = None,
    maps: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> PveFacts:
    vms = vms if vms is not None else [vm(101, "web"), vm(102, "db")]
    configs = configs if configs is not None else {101: dict(Q35), 102: {}}
    kw.setdefault("ids", {VF3: (43, "8086:000c")})
    return PveFacts(
        node=NODE,
        conn=CONN,
        vms=vms,
        configs=configs,
        mappings=parse_mappings(maps or []),
        present=frozenset({VF3, "0000:03:10.4", "0000:03:10.2"}),
        **kw,
    )


def ops(actions: list[Any]) -> list[tuple[str, str]]:
    return [(a.op, a.detail) for a in actions]


def test_token_attach_creates_a_vfctl_mapping_then_fills_hostpci0_with_pcie_on_q35() -> None:
    p = plan_attach(facts(), request("web"))
    assert ops(p.actions) == [
        ("proxmox.mapping_put", f"create: {NODE} -> {VF3}"),
        ("proxmox.hostpci_add", "add mapping=vf-eth2-3,pcie=1"),
    ]
    put = p.actions[0].params
    assert put["conn"] == CONN and put["expect"] is None and put["fill"] is None
    assert put["map"] == [
        f"node={NODE},path={VF3},id=8086:10ed,iommugroup=43,subsystem-id=8086:000c"
    ]
    undo = p.actions[1].undo
    assert undo is not None and undo.op == "proxmox.hostpci_remove"
    assert p.actions[1].params["slot"] == "hostpci0" and p.notes.texts == []


def test_root_writes_the_raw_address_into_the_first_free_slot() -> None:
    cfg = {101: {**Q35, "hostpci0": "0000:05:00.0", "hostpci1": "0000:05:00.1"}, 102: {}}
    p = plan_attach(facts(cfg, is_root=True), request("101"))
    assert ops(p.actions) == [("proxmox.hostpci_add", f"add host={VF3},pcie=1")]
    assert p.actions[0].params["slot"] == "hostpci2" and p.actions[0].target == "vm101 hostpci2"


def test_explicit_mapping_id_is_used_even_as_root_and_a_bad_id_is_refused() -> None:
    p = plan_attach(facts(is_root=True), request("web", mapping="fast0"))
    assert p.actions[0].params.get("id") == "fast0"
    assert p.actions[-1].detail == "add mapping=fast0,pcie=1"
    with pytest.raises(UsageError, match="mapping id '0bad' is invalid"):
        plan_attach(facts(), request("web", mapping="0bad"))


def test_i440fx_warns_omits_pcie_refuses_forced_pcie_and_keeps_rombar() -> None:
    with pytest.raises(UsageError, match=r"--pcie needs a q35 machine type; VM 102"):
        plan_attach(facts(), request("db", pcie=True))
    p = plan_attach(facts(is_root=True), request("db", rombar=False))
    assert p.actions[-1].detail == f"add host={VF3},rombar=0"
    assert p.notes.texts == [
        "VM 102 uses machine type i440fx (default): attaching as a conventional PCI "
        "device (pcie=1 needs q35)"
    ]


def test_driver_keep_needs_pve_9_1() -> None:
    with pytest.raises(UsageError, match=r"driver=keep needs PVE 9\.1 or later; pve1 runs 8\.4"):
        plan_attach(facts(version="8.4.1"), request("web", driver_keep=True))
    p = plan_attach(facts(version="9.1.2", is_root=True), request("web", driver_keep=True))
    assert p.actions[-1].detail == f"add host={VF3},pcie=1,driver=keep"


def test_already_attached_is_a_no_op() -> None:
    cfg = {101: {**Q35, "hostpci4": f"{VF3},pcie=1"}, 102: {}}
    assert plan_attach(facts(cfg), request("web")).actions == []
    via = {101: {**Q35, "hostpci0": "mapping=vf-eth2-3"}, 102: {}}
    assert plan_attach(facts(via, maps=[mapping("vf-eth2-3", VF3)]), request("web")).actions == []
    # vfctl's own entry written before sysfs could tell the subsystem id: completed now
    half = [mapping("vf-eth2-3", VF3, sub="")]
    p = plan_attach(facts(via, maps=half), request("web"))
    assert ops(p.actions) == [
        ("proxmox.mapping_put", f"complete {NODE} -> {VF3} (iommugroup/subsystem-id)")
    ]
    assert p.actions[0].params["map"][0].endswith("subsystem-id=8086:000c")


def test_vf_in_another_vm_is_refused_and_force_moves_it_keeping_the_mapping() -> None:
    cfg = {101: dict(Q35), 102: {"hostpci3": "mapping=vf-eth2-3"}}
    maps = [mapping("vf-eth2-3", VF3)]
    with pytest.raises(
        RefusedError, match=r"VF 0000:03:10.6 is already in VM 102 \(db\) as hostpci3"
    ):
        plan_attach(facts(cfg, maps=maps), request("web"))
    p = plan_attach(facts(cfg, maps=maps), request("web", force=True))
    assert [(a.op, a.target) for a in p.actions] == [
        ("proxmox.hostpci_remove", "vm102 hostpci3"),
        ("proxmox.hostpci_add", "vm101 hostpci0"),
    ]  # the mapping exists and points at the VF: no mapping write, no mapping delete


def test_vm_on_another_node_and_a_vf_held_by_a_running_qemu_are_refused() -> None:
    vms = [vm(101, "web"), vm(103, "far", node="pve2")]
    with pytest.raises(RefusedError, match="VM 103 \\(far\\) is on node pve2, but the VFs are on"):
        plan_attach(facts(vms=vms), request("far"))
    with pytest.raises(RefusedError, match=r"held by VM vm102 \(pid 4242\)"):
        plan_attach(facts(), request("web", held(vf(), "vm102")))
    assert plan_attach(facts(), request("web", held(vf(), "vm101"))).actions


def test_slots_taken_by_earlier_attaches_of_the_same_plan_and_pinned_slots() -> None:
    first = plan_attach(facts(is_root=True), request("web")).actions
    again = plan_attach(facts(is_root=True), request("web", vf(2), planned=tuple(first)))
    assert again.actions[-1].params["slot"] == "hostpci1"
    with pytest.raises(RefusedError, match="hostpci0 is already used \\(by another VF of this"):
        plan_attach(facts(is_root=True), request("web", vf(2), planned=tuple(first), slot=0))
    pinned = plan_attach(facts(is_root=True), request("web", slot=7)).actions
    assert pinned[-1].params["slot"] == "hostpci7"
    full = {101: {**Q35, **{f"hostpci{i}": f"0000:06:00.{i % 8}" for i in range(16)}}}
    with pytest.raises(RefusedError, match="no free hostpci slot"):
        plan_attach(facts(full, is_root=True), request("web"))


def test_running_vm_attach_warns_that_the_change_stays_pending() -> None:
    vms = [vm(101, "web", status="running")]
    p = plan_attach(facts(vms=vms, is_root=True), request("web"))
    assert p.notes.texts == [
        "VM 101 is running: PVE does not hot-plug hostpci devices, the change stays pending "
        "until the VM is stopped and started"
    ]


def test_an_entry_of_a_pool_is_refused_to_a_vm_outside_it() -> None:
    maps = parse_mappings([mapping("pool0", VF3, "0000:03:10.4", managed=False)])
    pool = Pool(maps[0], NODE, ((VF3,), ("0000:03:10.4",)), ("vm102",))
    with pytest.raises(
        RefusedError, match="entry of PCI mapping pool0, a pool on pve1 used by vm102"
    ):
        plan_attach(facts(pools=[pool]), request("web"))


def test_detach_removes_the_exact_slot_and_the_unused_vfctl_mapping() -> None:
    cfg = {101: {**Q35, "hostpci0": "0000:05:00.0", "hostpci2": "mapping=vf-eth2-3,pcie=1"}}
    p = plan_detach(facts(cfg, maps=[mapping("vf-eth2-3", VF3)]), request("web"))
    assert [(a.op, a.target) for a in p.actions] == [
        ("proxmox.hostpci_remove", "vm101 hostpci2"),
        ("proxmox.mapping_delete", "mapping vf-eth2-3"),
    ]
    assert p.actions[0].params["value"] == "mapping=vf-eth2-3,pcie=1"
    undo = p.actions[1].undo
    assert undo is not None and undo.op == "proxmox.mapping_put" and undo.params["expect"] is None


def test_detach_keeps_a_mapping_another_vm_uses_or_that_vfctl_did_not_make() -> None:
    cfg = {101: {"hostpci2": "mapping=vf-eth2-3"}, 102: {"hostpci0": "mapping=vf-eth2-3"}}
    p = plan_detach(facts(cfg, maps=[mapping("vf-eth2-3", VF3)]), request("web"))
    assert [a.op for a in p.actions] == ["proxmox.hostpci_remove"]
    mine = {101: {"hostpci2": "mapping=hand"}, 102: {}}
    p = plan_detach(facts(mine, maps=[mapping("hand", VF3, managed=False)]), request("web"))
    assert [a.op for a in p.actions] == ["proxmox.hostpci_remove"]


def test_detach_from_a_running_vm_with_the_slot_live_keeps_the_mapping_and_warns() -> None:
    vms = [vm(101, "web", status="running")]
    cfg = {101: {"hostpci2": "mapping=vf-eth2-3"}}
    p = plan_detach(
        facts(cfg, vms=vms, maps=[mapping("vf-eth2-3", VF3)], current=cfg), request("web")
    )
    assert [a.op for a in p.actions] == ["proxmox.hostpci_remove"]
    assert p.notes.texts == [
        "VM 101 is running: removing hostpci2 stays pending until the VM is stopped and started"
    ]


def test_detach_refuses_a_slot_shared_with_other_functions_and_a_pool_member() -> None:
    cfg = {101: {"hostpci0": f"{VF3};0000:03:10.4"}}
    with pytest.raises(RefusedError, match=r"passes 0000:03:10\.6 together with other functions"):
        plan_detach(facts(cfg), request("web"))
    pooled = {101: {"hostpci1": "mapping=pool0"}}
    maps = [mapping("pool0", VF3, "0000:03:10.4")]
    with pytest.raises(RefusedError, match="draws from pool pool0 \\(hostpci1\\)"):
        plan_detach(facts(pooled, maps=maps), request("web"))
    p = plan_detach(facts(pooled, maps=maps), request("web", mapping="pool0"))
    assert (p.actions[0].op, p.actions[0].target) == ("proxmox.hostpci_remove", "vm101 hostpci1")


def test_nothing_attached_means_nothing_to_detach() -> None:
    assert plan_detach(facts(), request("web")).actions == []
