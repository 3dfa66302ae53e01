"""The simulator sits behind the Host and netlink interfaces: nothing outside its package and
the one chooser (vfctl/host/open.py) asks whether a host is simulated or reaches into it."""

from __future__ import annotations

import ast
from pathlib import Path

from vfctl import backends
from vfctl.host import netlink
from vfctl.host.netlink import KernelNetlink
from vfctl.host.open import SIM_MARKER, KernelHost, open_host
from vfctl.sim.host import SimHost
from vfctl.sim.netlink import SimNetlink

PKG = Path(__file__).resolve().parents[2] / "vfctl"
CHOOSER = "host/open.py"


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        if rel.startswith("sim/") or rel == CHOOSER:
            continue
        out.append((rel, ast.parse(p.read_text(), rel)))
    return out


def test_no_simulated_branch_outside_the_sim_and_the_chooser() -> None:
    """No ``host.simulated``, no SimHost, no marker test: hosts differ by their methods."""
    found = [
        f"{rel}:{n.lineno}"
        for rel, tree in _modules()
        for n in ast.walk(tree)
        if (isinstance(n, ast.Attribute) and n.attr == "simulated")
        or (isinstance(n, ast.Name) and n.id in ("SimHost", "SimNetlink", "SIM_MARKER"))
        or (isinstance(n, ast.Constant) and isinstance(n.value, str) and SIM_MARKER in n.value)
    ]
    assert found == []


def test_the_chooser_and_the_simulator_agree_on_the_marker() -> None:
    from vfctl.sim.common import MARKER

    assert MARKER == SIM_MARKER


def test_only_the_sim_commands_import_the_simulator() -> None:
    """The real adapters (host/, backends/, the engine) never import the simulator; only
    ``vfctl sim init/snapshot`` (cli_sim.py), the simulator's own front end, does."""
    found = []
    for rel, tree in _modules():
        for n in ast.walk(tree):
            names = []
            if isinstance(n, ast.ImportFrom) and n.module:
                names = [n.module] + [f"{n.module}.{a.name}" for a in n.names]
            elif isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            sim = any(x == "vfctl.sim" or x.startswith("vfctl.sim.") for x in names)
            if sim and rel != "cli_sim.py":
                found.append(f"{rel}:{n.lineno}")
    assert found == []


def test_the_chooser_picks_by_the_marker(minimal: Path, tmp_path: Path) -> None:
    sim_host = open_host(minimal)
    assert type(sim_host) is SimHost and isinstance(sim_host.netlink, SimNetlink)
    plain = tmp_path / "tree"
    plain.mkdir()
    real = open_host(plain)
    assert type(real) is KernelHost and isinstance(real.netlink, KernelNetlink)
    assert real.live and not sim_host.live


def test_sim_host_netlink_is_the_simulators(minimal: Path) -> None:
    """The module functions reach the simulator through host.netlink (a real Host on the same
    tree is not this machine: it reports no VF settings)."""
    h = open_host(minimal)
    h.write("sys/class/net/enp1s0/device/sriov_numvfs", "2")
    assert [s.trust for s in netlink.vf_info(h, "enp1s0")] == [False, False]
    netlink.set_vf(h, "enp1s0", 1, {"trust": True})
    assert [s.trust for s in netlink.vf_info_all(h, ["enp1s0"])["enp1s0"]] == [False, True]
    assert netlink.vf_info(KernelHost(minimal), "enp1s0") == []


def test_libvirt_socket_on_a_simulated_root_is_no_daemon(minimal: Path, tmp_path: Path) -> None:
    """Backend detection asks Host.live, not which kind the host is."""
    for root in (minimal, tmp_path / "tree"):
        (root / "run/libvirt").mkdir(parents=True)
        (root / "run/libvirt/libvirt-sock").touch()
    cfg = backends.BackendConfig(env={})
    assert backends.detect(open_host(minimal), cfg) == []
    assert backends.detect(open_host(tmp_path / "tree"), cfg) == ["libvirt"]
