"""`make demo` end to end: scripts/demo.sh as a user runs it, a real isolated libvirtd included.

What is checked is what the demo promises: every step's real output and exit code, the VF in
the domain's persistent XML that libvirtd wrote under the demo directory, the daemon and every
process of its mount namespace gone at the end (also after Ctrl-C), nothing created outside the
demo directory, a second run working, and the host part alone without root.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from needs import missing

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.sh"
PYTHON = REPO / ".venv" / "bin" / "python"
HARNESS = REPO / "tests" / "libvirt" / "libvirtd.py"
# where a libvirtd looks on the host: the demo bind-mounts them in its namespace, never creates
HOST_PATHS = (
    "/run/libvirt",
    "/var/lib/libvirt",
    "/var/cache/libvirt",
    "/var/log/libvirt",
    "/var/tmp/vfctl-test-libvirtd-cache",
    "/var/lib/vfctl",  # vfctl's history and state live under its root: the simulated host
    "/run/vfctl",
    os.path.expanduser("~/.cache/libvirt"),
    os.path.expanduser("~/.config/libvirt"),
)
STEPS = (  # the VM part, in order (each a command line as the demo prints it)
    "virsh define",
    "vfctl attach vm101 enp1s0f0 vf3",
    "vfctl show enp1s0f0",
    "virsh dumpxml vm101",
    "vfctl attach vm102 enp1s0f0 vf3",
    "vfctl disable enp1s0f0",
    "vfctl detach vm101 enp1s0f0 vf3",
    "vfctl apply profiles/demo-attach.yaml",
    "vfctl apply profiles/demo-attach.yaml",
)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("VFCTL_", "LIBVIRT_"))}
    e["COLUMNS"] = "200"  # rich tables unwrapped
    return e


def cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            out[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return out


def mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def in_namespace(ns: str) -> list[int]:
    return [pid for pid in cmdlines() if pid != os.getpid() and mount_ns(pid) == ns]


@dataclass
class Demo:
    code: int
    out: str
    ns: str | None  # the daemon's mount namespace, seen while it ran


def run_demo(
    d: Path,
    interrupt_at: str | None = None,
    as_user: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    kill: bool = False,
) -> Demo:
    """Run the demo into D; with INTERRUPT_AT, Ctrl-C (SIGINT to its process group) when the
    output shows that line, or with KILL a SIGKILL to the demo script alone. Records the
    daemon's mount namespace while it runs."""
    # a log per run: a killed run's orphan step may still write at its old offset
    log = d.parent / f"{d.name}.{len(list(d.parent.glob(d.name + '.*.out')))}.out"
    with open(log, "wb") as out:
        p = subprocess.Popen(
            [*(as_user or []), "bash", str(DEMO), str(d)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**env(), **(extra_env or {})},
            start_new_session=True,
        )
    ns = None
    ours = mount_ns(os.getpid())
    deadline = time.monotonic() + 900
    while p.poll() is None and time.monotonic() < deadline:
        if ns is None:
            for pid, cmd in cmdlines().items():
                # `unshare -m -- python libvirtd.py --subreaper DIR` names DIR before its
                # unshare(2): until then it is in our namespace (CI once took ours for the
                # daemon's, and every process of the host was "left in it")
                if "--subreaper" in cmd and str(d) in cmd and mount_ns(pid) not in (None, ours):
                    ns = mount_ns(pid)
        if interrupt_at and interrupt_at in log.read_text(errors="replace"):
            if kill:
                p.kill()
            else:
                os.killpg(p.pid, signal.SIGINT)
            interrupt_at = None
        time.sleep(0.05)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(30)
    return Demo(p.returncode, log.read_text(errors="replace"), ns)


def naming(d: Path) -> dict[int, str]:
    """Processes whose command line names D (the harness, its subreaper, libvirtd)."""
    return {pid: cmd for pid, cmd in cmdlines().items() if str(d) in cmd and pid != os.getpid()}


def lock_held(d: Path) -> bool:
    """Whether some process still holds the demo's lock on D (see scripts/demo.sh)."""
    with open(d / ".vfctl-demo", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def assert_nothing_left(d: Path, demo: Demo) -> None:
    left = naming(d)
    assert not left, f"processes of the demo still running: {left}"
    assert demo.ns is not None, "the daemon's mount namespace was never seen"
    assert in_namespace(demo.ns) == [], "processes left in the daemon's mount namespace"


@pytest.fixture
def root_demo() -> Iterator[None]:
    if not PYTHON.exists():
        missing("no .venv: run `make venv-dev`")
    r = subprocess.run([PYTHON, HARNESS, "--check"], capture_output=True, text=True)
    if r.returncode != 0:
        missing(f"the isolated libvirtd cannot run here: {r.stdout.strip()}", "VFCTL_LIBVIRTD")
    before = {p for p in HOST_PATHS if os.path.lexists(p)}
    yield
    created = {p for p in HOST_PATHS if os.path.lexists(p)} - before
    assert not created, f"the demo created {created} outside its directory"


def steps(out: str) -> list[tuple[str, str]]:
    """(command, its output) for every `$ command` the demo printed, in order."""
    chunks = ("\n" + out).split("\n$ ")[1:]
    return [(c.split("\n", 1)[0], c.split("\n", 1)[1] if "\n" in c else "") for c in chunks]


def vm_part(out: str) -> list[str]:
    """The outputs of STEPS, matched in order after the VM part starts; AssertionError if one
    is missing or out of order."""
    done = steps(out)
    start = next(i for i, (cmd, _) in enumerate(done) if cmd.startswith("export VFCTL_LIBVIRT"))
    found, i = [], start
    for want in STEPS:
        while not done[i][0].startswith(want):
            i += 1  # IndexError: missing or out of order
        found.append(done[i][1])
        i += 1
    return found


def assert_readme_is_real(out: str, d: Path) -> None:
    """Every line of the README's first transcript is a line this run printed ("…" abridges)."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("```\n", 2)[1].split("```", 1)[0]
    assert "$ vfctl attach vm101 enp1s0f0 vf3" in block
    printed = {line.rstrip() for line in out.splitlines()}
    for line in block.splitlines():
        if line.strip() and line != "…":
            assert line.replace("demo-host", str(d)) in printed, f"README line not printed: {line}"


@pytest.mark.libvirtd
def test_demo_runs_the_mission_twice_and_leaves_nothing(tmp_path: Path, root_demo: None) -> None:
    d = tmp_path / "demo"
    for _ in range(2):  # the second run replaces the first one's directory
        demo = run_demo(d)
        assert demo.code == 0, demo.out[-3000:]
        assert_nothing_left(d, demo)
        assert "$ vfctl apply profiles/demo.yaml" in demo.out  # the host part first
        defined, attached, show, hostdev, other, disable, detach, apply1, apply2 = vm_part(demo.out)
        assert "Domain 'vm101' defined" in defined
        assert "attach <hostdev managed=yes> (config)" in attached
        assert re.search(r"│ 3 +│ 0000:01:10\.6 .*│ libvirt:vm101 +│", show), show
        assert "<hostdev mode='subsystem' type='pci' managed='yes'>" in hostdev
        assert "bus='0x01' slot='0x10' function='0x6'" in hostdev
        assert "<name>" not in hostdev  # trimmed to the <hostdev>
        assert "attached to another domain: vm101" in other and "(exit 4: refused)" in other
        assert "VFs in use" in disable and "(exit 4: refused)" in disable
        assert "detach <hostdev managed=yes> (config)" in detach
        assert "attach <hostdev managed=yes> (config)" in apply1
        assert "nothing to do" in apply2
        assert "libvirtd stopped" in demo.out
    assert_readme_is_real(demo.out, d)
    # what libvirtd itself persisted, in the demo directory: vm101 holds the VF again
    xml = (d / "libvirtd" / "etc" / "qemu" / "vm101.xml").read_text()
    assert "function='0x6'" in xml and "<hostdev" in xml
    assert "<hostdev" not in (d / "libvirtd" / "etc" / "qemu" / "vm102.xml").read_text()


@pytest.mark.libvirtd
def test_ctrl_c_stops_the_daemon_and_the_next_run_works(tmp_path: Path, root_demo: None) -> None:
    d = tmp_path / "demo"
    demo = run_demo(d, interrupt_at="$ " + STEPS[1])
    assert demo.code == 130, demo.out[-3000:]
    assert STEPS[1] in demo.out and STEPS[-1] not in demo.out
    assert "libvirtd stopped" in demo.out
    assert_nothing_left(d, demo)
    again = run_demo(d)
    assert again.code == 0, again.out[-3000:]
    assert len(vm_part(again.out)) == len(STEPS)
    assert_nothing_left(d, again)


@pytest.mark.libvirtd
def test_a_killed_demo_still_takes_its_daemon_down(tmp_path: Path, root_demo: None) -> None:
    """SIGKILL leaves bash no trap to run: the harness's --with-parent (PR_SET_PDEATHSIG) stops
    the daemon and everything in its namespace by itself."""
    d = tmp_path / "demo"
    demo = run_demo(d, interrupt_at="$ " + STEPS[1], kill=True)
    assert demo.code == -signal.SIGKILL
    assert "libvirtd stopped" not in demo.out
    assert demo.ns is not None
    deadline = time.monotonic() + 120  # stopping is asynchronous here: wait for it, bounded
    while (in_namespace(demo.ns) or naming(d)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_nothing_left(d, demo)
    # the step that ran when bash died (an orphan now) inherited the lock: until it ends, a new
    # demo refuses, as a directory still in use must; it ends once its libvirtd is gone
    while lock_held(d) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not lock_held(d), "the killed demo's last step never ended"
    again = run_demo(d)
    assert again.code == 0, again.out[-3000:]
    assert_nothing_left(d, again)


def assert_host_part_only(demo: Demo, d: Path, why: str) -> None:
    assert demo.code == 0, demo.out[-3000:]
    assert [cmd for cmd, _ in steps(demo.out)][:2] == [
        f"vfctl sim init {d}/host --preset default",
        f"export VFCTL_ROOT={d}/host",
    ]
    assert "$ vfctl apply profiles/demo.yaml" in demo.out
    assert "$ vfctl show enp1s0f0" in demo.out
    assert f"Skipped the libvirt part (attach, detach, a profile with attach:): {why}" in demo.out
    assert "$ vfctl attach" not in demo.out and "$ virsh" not in demo.out
    assert not (d / "libvirtd").exists()


def test_without_libvirt_the_host_part_runs_and_the_vm_part_says_why(tmp_path: Path) -> None:
    if not PYTHON.exists():
        missing("no .venv: run `make venv-dev`")
    path = [p for p in os.environ["PATH"].split(":") if not os.path.exists(f"{p}/libvirtd")]
    d = tmp_path / "demo"
    demo = run_demo(d, extra_env={"PATH": ":".join(path)})
    assert_host_part_only(demo, d, "missing executables: libvirtd")


def test_as_a_normal_user_the_host_part_runs_and_the_vm_part_says_why() -> None:
    if not PYTHON.exists():
        missing("no .venv: run `make venv-dev`")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        probe = f"PATH={PYTHON.parent}:$PATH; python -c 'import vfctl' && vfctl --version"
        r = subprocess.run([*as_user, "bash", "-c", probe], capture_output=True)
        if r.returncode != 0:
            # a venv made from a Python under /root (mode 0700) is out of nobody's reach: run
            # as uid 65534 of a user namespace instead. The demo sees a non-root uid and holds
            # no capability on the host (files of other users stay closed; root's own files
            # open, as root owns them: weaker than nobody, enough for the path under test)
            as_user = ["unshare", "--user", "--map-user=65534", "--map-group=65534", "--"]
            r = subprocess.run([*as_user, "bash", "-c", probe], capture_output=True)
            assert r.returncode == 0, r.stderr.decode()[-300:]
    top = Path(tempfile.mkdtemp(prefix="vfctl-demo-user-"))
    try:
        top.chmod(0o777)
        d = top / "demo"
        demo = run_demo(d, as_user=as_user)
        assert_host_part_only(demo, d, "the isolated libvirtd needs root")
    finally:
        shutil.rmtree(top)


def test_a_directory_libvirt_cannot_use_skips_the_vm_part_saying_why(tmp_path: Path) -> None:
    if not PYTHON.exists():
        missing("no .venv: run `make venv-dev`")
    d = tmp_path / "a demo"  # a space: no libvirt socket URI can name it
    demo = run_demo(d)
    assert_host_part_only(demo, d, f"'{d}/libvirtd': only letters, digits and ._+-/ work")


def test_one_demo_per_directory_at_a_time(tmp_path: Path) -> None:
    d = tmp_path / "demo"
    d.mkdir()
    with open(d / ".vfctl-demo", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running demo holds it
        r = subprocess.run(["bash", str(DEMO), str(d)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert f"another demo runs in {d}" in r.stderr
    assert sorted(p.name for p in d.iterdir()) == [".vfctl-demo"]


def test_refuses_a_directory_that_is_not_the_demos(tmp_path: Path) -> None:
    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    r = subprocess.run(["bash", str(DEMO), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "not an earlier demo's directory" in r.stderr
    assert keep.read_text() == "mine"
