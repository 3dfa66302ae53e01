"""ProxmoxBackend against the fake cluster: token/https (mappings) and pvesh/root (raw host)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import NODE, TOKEN_SECRET, Tls, request, vm
from fakepve import FakePve

from vfctl.backends.proxmox import ProxmoxBackend, mapping_id_for
from vfctl.errors import BackendError, NotFoundError, RefusedError, UsageError, VfctlError
from vfctl.plan import Action, ExecutionFailed, Result

Run = Callable[[ProxmoxBackend, list[Action]], Result]
VF3 = "0000:03:10.6"  # VF 3 of eth2 in conftest.make_pf


def config(fake: FakePve, vmid: int) -> dict[str, Any]:
    v = fake.read()["vms"][str(vmid)]
    cfg: dict[str, Any] = {**v["config"], **v["pending"]}
    for k in v["pending_delete"]:
        cfg.pop(k, None)
    return cfg


def writes(fake: FakePve) -> list[dict[str, Any]]:
    return [e for e in fake.read()["log"] if e["method"] != "GET"]


# ---- token over https: cluster mapping -----------------------------------------------------


def test_token_attach_uses_mapping_then_idempotent(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    actions = token_backend.plan_attach(request("web"))
    assert [a.op for a in actions] == ["proxmox.mapping_put", "proxmox.hostpci_add"]
    for a in actions:  # journal-safe: plain JSON, no secret anywhere
        assert TOKEN_SECRET not in repr(a.to_record())
    res = run(token_backend, actions)
    assert res.changed and res.error is None
    st = fake.read()
    mid = "vf-eth2-3"
    assert st["mappings"][mid]["map"] == [f"node=pve1,path={VF3},id=8086:10ed,iommugroup=43"]
    assert st["mappings"][mid]["description"].startswith("vfctl:")
    assert config(fake, 101)["hostpci0"] == f"mapping={mid},pcie=1"  # q35 -> pcie=1
    puts = [w for w in writes(fake) if w["path"].endswith("/config")]
    assert all("digest" in w["params"] for w in puts)
    # again: already there (through its mapping) -> nothing to do, nothing written
    n = len(writes(fake))
    assert token_backend.plan_attach(request("vm101")) == []
    assert token_backend.plan_attach(request("101", mapping="other")) == []
    assert len(writes(fake)) == n


def test_mapping_id_is_stable_and_valid() -> None:
    pf, vf = request("x").pf, request("x").vf
    assert mapping_id_for(pf, vf) == "vf-eth2-3"
    from dataclasses import replace

    assert mapping_id_for(replace(pf, netdev=None), vf) == "vf-0000-03-00-0-3"
    assert mapping_id_for(replace(pf, netdev="enp3s0f0.V"), vf) == "vf-enp3s0f0-v-3"


def test_i440fx_warns_and_omits_pcie_and_pcie_flag_refused(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    with pytest.raises(UsageError, match=r"--pcie needs a q35.*VM 102"):
        token_backend.plan_attach(request("db", pcie=True))
    run(token_backend, token_backend.plan_attach(request("db", rombar=False, driver_keep=True)))
    assert config(fake, 102)["hostpci0"] == "mapping=vf-eth2-3,rombar=0,driver=keep"
    assert any("pcie=1 needs q35" in w for w in token_backend.warnings())


def test_driver_keep_needs_9_1(token_backend: ProxmoxBackend, fake: FakePve) -> None:
    with fake.edit() as st:
        st["version"] = {"version": "8.4.1", "release": "8.4", "repoid": "0123abcd"}
    with pytest.raises(UsageError, match=r"driver=keep needs PVE 9\.1"):
        token_backend.plan_attach(request("web", driver_keep=True))


def test_running_vm_change_is_pending(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    with fake.edit() as st:
        st["vms"]["101"]["status"] = "running"
    res = run(token_backend, token_backend.plan_attach(request("web")))
    st = fake.read()["vms"]["101"]
    assert (
        "hostpci0" not in st["config"] and st["pending"]["hostpci0"] == "mapping=vf-eth2-3,pcie=1"
    )
    assert any("pending hostpci0=mapping=vf-eth2-3" in w for w in res.warnings)
    assert token_backend.pending() == [
        {
            "vm": 101,
            "node": "pve1",
            "key": "hostpci0",
            "pending": "mapping=vf-eth2-3,pcie=1",
            "delete": False,
        }
    ]
    att = token_backend.attachments()[VF3]
    assert [(a.vm, a.element, a.live, a.config) for a in att] == [
        ("vm101", "hostpci0", False, True)
    ]
    # detach while running: a pending delete of a device that is live
    with fake.edit() as st:  # as if the VM had been restarted: the device is live now
        v = st["vms"]["101"]
        v["config"].update(v["pending"])
        v["pending"] = {}
    token_backend.warned.clear()
    run(token_backend, token_backend.plan_detach(request("web")))
    assert fake.read()["vms"]["101"]["pending_delete"] == ["hostpci0"]
    assert any("stays pending" in w for w in token_backend.warnings())
    assert "vf-eth2-3" in fake.read()["mappings"]  # still used by the running instance
    att = token_backend.attachments()[VF3]
    assert [(a.live, a.config) for a in att] == [(True, False)]
    with fake.edit() as st:  # VM stopped and started: pending delete applied
        v = st["vms"]["101"]
        v["config"].pop("hostpci0")
        v["pending_delete"] = []
    actions = token_backend.plan_detach(request("web"))
    assert [a.op for a in actions] == ["proxmox.mapping_delete"]  # leftover cleaned up
    run(token_backend, actions)
    assert "vf-eth2-3" not in fake.read()["mappings"]
    assert token_backend.plan_detach(request("web")) == []


def test_concurrent_change_is_retried_and_kept(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    actions = token_backend.plan_attach(request("web"))
    with fake.edit() as st:  # between our read and our write, someone takes hostpci0
        st["tamper"] = [{"vmid": 101, "times": 1, "set": {"hostpci0": "mapping=gpu", "cores": 8}}]
    run(token_backend, actions)
    cfg = config(fake, 101)
    assert cfg["hostpci0"] == "mapping=gpu" and cfg["cores"] == 8  # their change survives
    assert cfg["hostpci1"] == "mapping=vf-eth2-3,pcie=1"  # ours went to the next free slot
    digests = [w["params"]["digest"] for w in writes(fake) if w["path"].endswith("/config")]
    assert len(digests) == 2 and digests[0] != digests[1]


def test_concurrent_changes_exhaust_retries_and_roll_back(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    actions = token_backend.plan_attach(request("web"))
    with fake.edit() as st:
        st["tamper"] = [{"vmid": 101, "times": 99, "bump": "cores"}]
    with pytest.raises(ExecutionFailed) as ei:
        run(token_backend, actions)
    assert ei.value.exit_code == 6
    assert (
        "digest mismatch" in ei.value.message
        and "mapping vf-eth2-3 (create" in ei.value.message.split("rolled back:")[1]
    )
    st = fake.read()
    assert "vf-eth2-3" not in st["mappings"]  # the mapping created first was removed again
    assert not any(k.startswith("hostpci") for k in config(fake, 101))


def test_detach_removes_slot_and_own_unused_mapping(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    run(token_backend, token_backend.plan_attach(request("web")))
    with fake.edit() as st:  # a user-made mapping used by another VM stays untouched
        st["mappings"]["shared"] = {
            "map": ["node=pve1,path=0000:03:10.4,id=8086:10ed"],
            "description": "made by hand",
        }
        st["vms"]["102"]["config"]["hostpci4"] = "mapping=shared"
    actions = token_backend.plan_detach(request("web"))
    assert [a.op for a in actions] == ["proxmox.hostpci_remove", "proxmox.mapping_delete"]
    run(token_backend, actions)
    assert "hostpci0" not in config(fake, 101)
    dels = [w["params"] for w in writes(fake) if w["path"].endswith("/config")][-1]
    assert dels["delete"] == "hostpci0" and "digest" in dels
    assert "vf-eth2-3" not in fake.read()["mappings"]
    assert token_backend.plan_detach(request("web")) == []  # idempotent
    # detaching the hand-made mapping's VF from 102 keeps the mapping
    run(token_backend, token_backend.plan_detach(request("db", index=2)))
    assert "hostpci4" not in config(fake, 102) and "shared" in fake.read()["mappings"]


def test_detach_keeps_mapping_still_used_elsewhere(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    run(token_backend, token_backend.plan_attach(request("web")))
    with fake.edit() as st:
        st["vms"]["103"]["config"]["hostpci2"] = "mapping=vf-eth2-3"  # on pve2, same mapping
    assert [a.op for a in token_backend.plan_detach(request("web"))] == ["proxmox.hostpci_remove"]


def test_vf_in_other_vm_refused_then_forced_move(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    run(token_backend, token_backend.plan_attach(request("db")))
    with pytest.raises(RefusedError, match=r"already in VM 102 \(db\) as hostpci0"):
        token_backend.plan_attach(request("web"))
    actions = token_backend.plan_attach(request("web", force=True))
    assert [a.op for a in actions] == ["proxmox.hostpci_remove", "proxmox.hostpci_add"]
    run(token_backend, actions)
    assert "hostpci0" not in config(fake, 102)
    assert config(fake, 101)["hostpci0"] == "mapping=vf-eth2-3,pcie=1"
    assert [a.vm for a in token_backend.attachments()[VF3]] == ["vm101"]


def test_user_mapping_pointing_elsewhere_refused_even_with_force(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    """A mapping vfctl did not create is never rewritten (issue 12 §2), --force or not."""
    hand_made = {
        "map": [
            "node=pve1,path=0000:03:11.0,id=8086:10ed",
            "node=pve2,path=0000:81:10.0,id=8086:10ed",
        ],
        "description": "hand made",
    }
    with fake.edit() as st:
        st["mappings"]["nic"] = hand_made
    for force in (False, True):
        with pytest.raises(RefusedError, match=r"mapping nic maps node pve1 to 0000:03:11\.0") as e:
            token_backend.plan_attach(request("web", mapping="nic", force=force))
        assert e.value.exit_code == 4
        assert "was not created by vfctl" in e.value.message
        assert "pvesh set /cluster/mapping/pci/nic" in e.value.message
    assert fake.read()["mappings"]["nic"] == hand_made
    assert "hostpci0" not in config(fake, 101)


@pytest.mark.parametrize(
    "ref, exc, code, text",
    [
        ("vm999", NotFoundError, 3, "VM 'vm999' not found"),
        ("nosuch", NotFoundError, 3, "not found"),
        ("twin", UsageError, 2, "ambiguous"),
        ("far", RefusedError, 4, "on node pve2, but the VFs are on node pve1"),
    ],
)
def test_vm_resolution_errors(
    token_backend: ProxmoxBackend,
    fake: FakePve,
    ref: str,
    exc: type[VfctlError],
    code: int,
    text: str,
) -> None:
    with fake.edit() as st:
        st["vms"]["110"] = vm("pve1", "twin")
        st["vms"]["111"] = vm("pve2", "twin")
    with pytest.raises(exc, match=text) as ei:
        token_backend.plan_attach(request(ref))
    assert ei.value.exit_code == code
    assert writes(fake) == []


def test_unknown_node_and_no_free_slot(
    token_env: dict[str, str], tls: Tls, fake: FakePve, token_backend: ProxmoxBackend
) -> None:
    be = ProxmoxBackend.from_env(node="pve9", ca=tls.ca, insecure=False, env=token_env)
    with pytest.raises(NotFoundError, match="node 'pve9'"):
        be.plan_attach(request("web"))
    with fake.edit() as st:
        st["vms"]["101"]["config"].update(
            {f"hostpci{i}": f"host=0000:8{i:x}:00.0" for i in range(16)}
        )
    with pytest.raises(RefusedError, match="no free hostpci slot") as ei:
        token_backend.plan_attach(request("web"))
    assert ei.value.exit_code == 4


def test_bad_token_is_a_clear_backend_error(
    token_env: dict[str, str], tls: Tls, fake: FakePve
) -> None:
    env = {**token_env, "VFCTL_PVE_TOKEN_VALUE": "wrong-secret-value"}
    be = ProxmoxBackend.from_env(node=None, ca=tls.ca, insecure=False, env=env)
    with pytest.raises(BackendError) as ei:
        be.plan_attach(request("web"))
    msg = ei.value.message
    assert ei.value.exit_code == 6 and "\n" not in msg
    assert "authentication failed for vfctl@pve!ci" in msg and "wrong-secret" not in msg
    assert writes(fake) == []


def test_tls_verification_failure(token_env: dict[str, str], tls: Tls, fake: FakePve) -> None:
    be = ProxmoxBackend.from_env(node=None, ca=None, insecure=False, env=token_env)
    with pytest.raises(BackendError, match="TLS certificate verification failed") as ei:
        be.attachments()
    assert ei.value.exit_code == 6 and TOKEN_SECRET not in ei.value.message
    assert fake.read()["log"] == []  # nothing reached the API
    insecure = ProxmoxBackend.from_env(node=None, ca=None, insecure=True, env=token_env)
    assert insecure.attachments() == {}


def test_token_file_must_be_private(token_env: dict[str, str], tls: Tls, tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text(TOKEN_SECRET + "\n")
    env = {k: v for k, v in token_env.items() if k != "VFCTL_PVE_TOKEN_VALUE"}
    env["VFCTL_PVE_TOKEN_FILE"] = str(f)
    f.chmod(0o640)
    with pytest.raises(UsageError, match="accessible by group/others"):
        ProxmoxBackend.from_env(node=None, ca=tls.ca, insecure=False, env=env)
    f.chmod(0o600)
    be = ProxmoxBackend.from_env(node=None, ca=tls.ca, insecure=False, env=env)
    assert be.attachments() == {}
    assert TOKEN_SECRET not in repr(be.params())


def test_inventory(token_backend: ProxmoxBackend, fake: FakePve) -> None:
    with fake.edit() as st:
        st["mappings"]["nic"] = {
            "map": [
                "node=pve1,path=0000:03:11.0,id=8086:10ed",
                "node=pve2,path=0000:03:11.2,id=8086:10ed",
            ]
        }
        st["vms"]["101"]["config"]["hostpci1"] = "0000:03:10.2;03:10.4,pcie=1"
        st["vms"]["102"]["config"]["hostpci0"] = "host=03:10"  # all functions of 03:10
        st["vms"]["102"]["config"]["hostpci3"] = "mapping=nic"
        st["vms"]["103"]["config"]["hostpci0"] = "host=0000:03:11.4"  # other node: not ours
    inv = token_backend.attachments()
    assert sorted((a.vm, a.element) for a in inv["0000:03:10.2"]) == [
        ("vm101", "hostpci1"),
        ("vm102", "hostpci0"),
    ]
    assert [a.element for a in inv["0000:03:10.6"]] == ["hostpci0"]
    assert [(a.vm, a.element) for a in inv["0000:03:11.0"]] == [("vm102", "hostpci3")]
    assert "0000:03:11.2" not in inv and "0000:03:11.4" not in inv
    assert all(
        a.backend == "proxmox" and a.config and not a.live for lst in inv.values() for a in lst
    )


# ---- root on the node: pvesh, raw host= ----------------------------------------------------


def test_local_pvesh_raw_attach_detach(
    local_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    actions = local_backend.plan_attach(request("web"))
    assert [a.op for a in actions] == ["proxmox.hostpci_add"]
    run(local_backend, actions)
    assert config(fake, 101)["hostpci0"] == f"host={VF3},pcie=1"
    assert {e["identity"] for e in fake.read()["log"]} == {"root@pam"}
    assert local_backend.plan_attach(request("web")) == []
    assert local_backend.attachments()[VF3][0].element == "hostpci0"
    run(local_backend, local_backend.plan_detach(request("web")))
    assert "hostpci0" not in config(fake, 101)


def test_local_pvesh_digest_retry_and_errors(
    local_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    actions = local_backend.plan_attach(request("db"))
    with fake.edit() as st:
        st["tamper"] = [{"vmid": 102, "times": 2, "set": {"hostpci0": "host=0000:82:00.0"}}]
    run(local_backend, actions)
    assert config(fake, 102)["hostpci0"] == "host=0000:82:00.0"
    assert config(fake, 102)["hostpci1"] == f"host={VF3}"
    with pytest.raises(UsageError, match="--pcie needs a q35"):
        local_backend.plan_attach(request("db", index=1, pcie=True))
    # an API refusal through pvesh (parameter verification on stderr) -> exit 6, one line
    with pytest.raises(BackendError) as ei:
        local_backend.api.put("/nodes/pve1/qemu/101/config", hostpci16="host=0000:03:10.0")
    assert ei.value.exit_code == 6 and "\n" not in ei.value.message
    assert "hostpci16" in ei.value.message and "400" in ei.value.message


def test_local_explicit_mapping_with_two_nodes(
    local_backend: ProxmoxBackend, fake: FakePve, run: Run
) -> None:
    with fake.edit() as st:
        st["mappings"]["nic"] = {
            "map": ["node=pve2,path=0000:81:10.0,id=8086:10ed"],
            "description": "vfctl: shared",
        }
    run(local_backend, local_backend.plan_attach(request("web", mapping="nic")))
    assert fake.read()["mappings"]["nic"]["map"] == [  # pvesh got one -map per entry
        "node=pve2,path=0000:81:10.0,id=8086:10ed",
        f"node=pve1,path={VF3},id=8086:10ed,iommugroup=43",
    ]
    assert config(fake, 101)["hostpci0"] == "mapping=nic,pcie=1"


def test_from_env_modes(token_env: dict[str, str]) -> None:
    from vfctl.backends.pve_client import settings_from_env

    s = settings_from_env(None, None, False, {"VFCTL_PVE_NODE": NODE}, euid=0)
    assert (s.mode, s.node) == ("local", NODE)
    with pytest.raises(UsageError, match="needs root"):
        settings_from_env(None, None, False, {}, euid=1000)
    with pytest.raises(UsageError, match="VFCTL_PVE_TOKEN_NAME"):
        settings_from_env(None, None, False, {"VFCTL_PVE_HOST": "h", "VFCTL_PVE_USER": "a@pve"})
    s = settings_from_env(None, "/ca.pem", False, token_env)
    assert s.mode == "https" and s.ca == "/ca.pem" and TOKEN_SECRET not in repr(s.to_params())


def test_mapping_entry_carries_subsystem_id_from_sysfs(
    token_backend: ProxmoxBackend, fake: FakePve, run: Run, tmp_path: Path
) -> None:
    dev = tmp_path / "hostroot" / "sys" / "bus" / "pci" / "devices" / VF3
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "subsystem_vendor").write_text("0x8086\n")
    (dev / "subsystem_device").write_text("0x000c\n")
    run(token_backend, token_backend.plan_attach(request("web")))
    assert fake.read()["mappings"]["vf-eth2-3"]["map"] == [
        f"node=pve1,path={VF3},id=8086:10ed,iommugroup=43,subsystem-id=8086:000c"
    ]


def test_detach_refuses_shared_multi_function_entry(
    local_backend: ProxmoxBackend, fake: FakePve
) -> None:
    with fake.edit() as st:
        st["vms"]["101"]["config"]["hostpci2"] = "host=0000:03:10.4;0000:03:10.6"
    assert local_backend.plan_attach(request("web")) == []  # held through the list
    with pytest.raises(RefusedError, match="together with other functions") as ei:
        local_backend.plan_detach(request("web"))
    assert ei.value.exit_code == 4


def test_ops_on_a_fresh_instance_from_params(
    token_backend: ProxmoxBackend, token_env: dict[str, str], fake: FakePve, tmp_path: Path
) -> None:
    """As in the CLI and `vfctl recover`: the engine rebuilds the backend from params()."""
    from vfctl.host.open import open_host
    from vfctl.plan import Context, execute

    with fake.edit() as st:
        st["vms"]["101"]["status"] = "running"
    actions = token_backend.plan_attach(request("web"))
    made: list[ProxmoxBackend] = []

    def factory(name: str, params: Any) -> ProxmoxBackend:
        assert name == "proxmox" and TOKEN_SECRET not in repr(params)
        made.append(ProxmoxBackend.from_params(params, env=token_env))
        return made[-1]

    (tmp_path / "r").mkdir()
    execute(Context(open_host(tmp_path / "r"), backend_factory=factory), actions)
    assert len(made) == 1 and made[0] is not token_backend
    # pending changes are the connection instance's own: no process-wide list carries them
    assert [e["key"] for e in made[0].pending()] == ["hostpci0"]
    assert token_backend.pending() == []
    # detaching a change that never went live also removes vfctl's mapping at once
    actions = token_backend.plan_detach(request("web"))
    assert [a.op for a in actions] == ["proxmox.hostpci_remove", "proxmox.mapping_delete"]
    execute(Context(open_host(tmp_path / "r"), backend_factory=factory), actions)
    assert fake.read()["mappings"] == {} and fake.read()["vms"]["101"]["pending"] == {}
