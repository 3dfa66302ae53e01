"""An isolated, real libvirtd for tests: own sockets, config and state, torn down completely.

Layout (LAB.md): the daemon runs in a private mount namespace (``unshare -m``) where a temp
directory is bind-mounted over /etc/libvirt, /run/libvirt and /var/{lib,cache,log}/libvirt, and
private copies of /etc/passwd and /etc/group add the ``libvirt-qemu`` user libvirt resolves
before it reads qemu.conf. A small subreaper (this file run as a script) owns the daemon and
every QEMU it spawns, so stopping it kills them all; the namespace, and with it every mount,
disappears when its last process exits. The QEMU capability cache lives outside the temp
directory so later runs start in a fraction of a second (the daemon is pinned to CPU 0 so the
cache stays valid).

Run ``python tests/libvirt/libvirtd.py DIR`` to keep one running by hand (Ctrl-C stops it).
``make demo`` (scripts/demo.sh) runs it that way too, with ``--cache`` and ``--no-host-dirs``
inside its own directory and ``--with-parent``, so it touches nothing outside that directory.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MOUNTS = ("etc", "run", "lib", "cache", "log")
TARGETS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
DEFAULT_CACHE = "/var/tmp/vfctl-test-libvirtd-cache"
# the directory goes into a URI and libvirtd.conf unquoted, and its sockets into sun_path
SAFE_PATH = re.compile(r"[A-Za-z0-9._+/-]+")
SUN_PATH_MAX = 107


class LibvirtdError(RuntimeError):
    """The daemon could not be started (the message carries its log tail)."""


def missing_tools() -> list[str]:
    """Executables this harness needs that the host lacks."""
    tools = ("libvirtd", "virsh", "unshare", "mount", "taskset", "qemu-system-x86_64")
    return [t for t in tools if shutil.which(t) is None]


def unusable_dir(workdir: Path) -> str | None:
    """Why WORKDIR cannot hold the daemon, or None."""
    path = Path(workdir).absolute()
    if not SAFE_PATH.fullmatch(str(path)):
        return f"{str(path)!r}: only letters, digits and ._+-/ work in a libvirt socket URI"
    longest = path / "sock" / "libvirt-admin-sock"
    if len(os.fsencode(longest)) > SUN_PATH_MAX:
        return f"{longest}: longer than a unix socket path may be ({SUN_PATH_MAX} bytes)"
    return None


def cannot_run(workdir: Path | None = None) -> str | None:
    """Why this machine (and WORKDIR, when given) cannot run the isolated daemon, or None."""
    if workdir is not None and (why := unusable_dir(workdir)):
        return why
    missing = missing_tools()
    if missing:
        return f"missing executables: {', '.join(missing)}"
    if os.geteuid() != 0:
        return "the isolated libvirtd needs root (mount namespace, qemu:///system)"
    return None


def _qemu_conf() -> str:
    # root/no security driver/no namespaces: nothing to relabel; "file" avoids needing virtlogd
    return "\n".join(
        [
            'user = "root"',
            'group = "root"',
            'security_driver = "none"',
            "dynamic_ownership = 0",
            "remember_owner = 0",
            "namespaces = []",
            'stdio_handler = "file"',
            "",
        ]
    )


def _libvirtd_conf(sock_dir: Path) -> str:
    return "\n".join(
        [
            f'unix_sock_dir = "{sock_dir}"',
            'auth_unix_rw = "none"',
            'auth_unix_ro = "none"',
            'unix_sock_rw_perms = "0700"',
            "log_level = 3",
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"',
            "",
        ]
    )


def _with_user(src: str, line: str, name: str) -> str:
    text = Path(src).read_text(encoding="utf-8")
    if any(ln.split(":", 1)[0] == name for ln in text.splitlines()):
        return text
    return text.rstrip("\n") + "\n" + line + "\n"


class Libvirtd:
    """One isolated daemon; ``uri`` is valid between ``start()`` and ``stop()``."""

    def __init__(
        self,
        workdir: Path,
        cache_dir: Path | None = None,
        host_dirs: bool = True,
        pci_root: Path | None = None,
    ) -> None:
        """``host_dirs=False``: mount points missing on the host (a libvirt installed without
        its system service lacks /run/libvirt and /var/{lib,cache,log}/libvirt) are made inside
        the namespace, on an overlay, instead of as empty directories on the host."""
        self.dir = Path(workdir).absolute()
        self.cache_dir = Path(cache_dir or os.environ.get("VFCTL_LIBVIRTD_CACHE") or DEFAULT_CACHE)
        self.host_dirs = host_dirs
        # a simulated host whose PCI tree the daemon sees as /sys/bus/pci (hostdev networks
        # are checked against sysfs: every listed address must be an SR-IOV VF)
        self.pci_root = pci_root
        self.sock_dir = self.dir / "sock"
        self.uri = f"qemu:///system?socket={self.sock_dir}/libvirt-sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "libvirtd.log"

    def _prepare(self) -> None:
        for sub in (*MOUNTS, "sock"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "etc" / "libvirtd.conf").write_text(_libvirtd_conf(self.sock_dir))
        (self.dir / "etc" / "qemu.conf").write_text(_qemu_conf())
        (self.dir / "passwd").write_text(
            _with_user(
                "/etc/passwd",
                "libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin",
                "libvirt-qemu",
            )
        )
        (self.dir / "group").write_text(
            _with_user("/etc/group", "libvirt-qemu:x:64055:", "libvirt-qemu")
        )
        if self.host_dirs:  # mount points; empty dirs a libvirt install also makes
            for target in TARGETS.values():
                os.makedirs(target, exist_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until ``virsh version`` answers; LibvirtdError with the log otherwise."""
        why = cannot_run(self.dir)
        if why:
            raise LibvirtdError(why)
        self._prepare()
        out = open(self.dir / "wrapper.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "--",
                sys.executable,
                os.path.abspath(__file__),
                "--subreaper",
                str(self.dir),
                str(self.cache_dir),
                *([] if self.host_dirs else ["--overlay"]),
                *([] if self.pci_root is None else ["--pci-root", str(self.pci_root)]),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise LibvirtdError(
                    f"libvirtd exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:  # a loaded machine (the lab's nested TCG) may take long: ask until the deadline
                r = subprocess.run(
                    ["virsh", "-q", "-c", self.uri, "version"],
                    capture_output=True,
                    timeout=max(1.0, min(30.0, deadline - time.monotonic())),
                    check=False,
                )
                if r.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LibvirtdError(
                    f"libvirtd did not answer within {timeout:.0f}s: {self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the daemon and every QEMU it started; idempotent."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        text = ""
        for f in (self.dir / "wrapper.log", self.log_path):
            with contextlib.suppress(OSError):
                text += f.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no log)"


# ---- the subreaper, run inside the private mount namespace ---------------------------------


def _prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _mount_points_in_overlays(workdir: Path) -> None:
    """Make the missing mount points inside this namespace only: each missing target's parent
    gets an overlay whose upper layer is a tmpfs, so the host's directories stay untouched."""
    parents = sorted({os.path.dirname(t) for t in TARGETS.values() if not os.path.isdir(t)})
    if not parents:
        return
    layers = workdir / "overlay"
    layers.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0700", "vfctl-libvirtd", layers], check=True
    )
    for i, parent in enumerate(parents):
        up, wk = layers / f"{i}.up", layers / f"{i}.work"
        up.mkdir()
        wk.mkdir()
        opts = f"lowerdir={parent},upperdir={up},workdir={wk}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, parent], check=True)
    for target in TARGETS.values():
        os.makedirs(target, exist_ok=True)


def _pci_binds(root: Path) -> list[tuple[Path, str]]:
    """The simulated host's PCI bus and device trees over the real ones, in this namespace only.

    Its ``sys/bus/pci/devices`` links are relative (``../../../devices/pci0000:00/…``), so the
    device tree goes over the real root of the same name (which must exist to mount on).
    """
    out: list[tuple[Path, str]] = [(root / "sys/bus/pci", "/sys/bus/pci")]
    for top in sorted((root / "sys/devices").iterdir()):
        if top.name.startswith("pci") and os.path.isdir(f"/sys/devices/{top.name}"):
            out.append((top, f"/sys/devices/{top.name}"))
    return out


def _subreaper(workdir: Path, cache_dir: Path, overlay: bool, pci_root: Path | None) -> int:
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the test process died: take everything down
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if overlay:
        _mount_points_in_overlays(workdir)
    binds = [(workdir / sub, TARGETS[sub]) for sub in MOUNTS if sub != "cache"]
    binds += [
        (cache_dir, TARGETS["cache"]),
        (workdir / "passwd", "/etc/passwd"),
        (workdir / "group", "/etc/group"),
    ]
    if pci_root is not None:
        binds += _pci_binds(pci_root)
    for src, dst in binds:
        subprocess.run(["mount", "--bind", str(src), dst], check=True)

    def in_child() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    daemon = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            "libvirtd",
            "-p",
            str(workdir / "libvirtd.pid"),
            "-f",
            "/etc/libvirt/libvirtd.conf",
        ],
        preexec_fn=in_child,
    )

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while True:  # reap everything; QEMU processes are re-parented to us
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        if pid == daemon.pid:
            status = os.waitstatus_to_exitcode(st)
            break
    # libvirtd leaves domains running by design: they must not outlive the test daemon. Bounded
    # by time, not by rounds: under load a killed QEMU can take seconds to exit and hand its own
    # children to us, and leaving before then lets them escape the demo's "nothing left" promise
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = _children(os.getpid())
        if not kids:
            break
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        time.sleep(0.02)
    return status


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="libvirtd.py",
        description="Run an isolated libvirtd in DIR; print its URI on stdout once it answers, "
        "then keep it until SIGTERM, SIGINT or SIGHUP, and stop it with every process it made.",
    )
    ap.add_argument("dir", type=Path, nargs="?")
    ap.add_argument("--cache", type=Path, help="QEMU capability cache (default: shared, /var/tmp)")
    ap.add_argument(
        "--no-host-dirs", action="store_true", help="never create mount points on the host"
    )
    ap.add_argument("--with-parent", action="store_true", help="stop when the parent dies")
    ap.add_argument(
        "--check", action="store_true", help="say why this machine (and DIR) cannot run it"
    )
    return ap.parse_args(argv)


def _stop_on_signals() -> None:
    def stop(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # one stop, not interrupted
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--subreaper"]:
        rest = argv[3:]
        pci = Path(rest[rest.index("--pci-root") + 1]) if "--pci-root" in rest else None
        return _subreaper(Path(argv[1]), Path(argv[2]), "--overlay" in rest, pci)
    args = _parse(argv)
    if args.check:
        why = cannot_run(args.dir)
        print(why or "ok")
        return 1 if why else 0
    if args.dir is None:
        print("libvirtd.py: DIR is required", file=sys.stderr)
        return 2
    _stop_on_signals()
    if args.with_parent:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent is already gone
            return 1
    d = Libvirtd(args.dir, args.cache, host_dirs=not args.no_host_dirs)
    try:
        d.start(timeout=110.0)  # nested TCG under load (the lab) starts slowly
        print(d.uri, flush=True)
        while True:
            signal.pause()
    except LibvirtdError as exc:
        print(f"libvirtd: {exc}", file=sys.stderr)
        return 1
    except SystemExit:  # the normal end: a signal asked to stop
        return 0
    finally:
        d.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
