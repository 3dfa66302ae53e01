"""The real-kernel lab: a Debian kernel under QEMU (TCG) with SR-IOV devices and a vIOMMU.

One boot serves many commands: the guest's PID 1 is a small agent that reads command ids from a
virtio-serial port, runs the matching script from the boot's shared work directory and answers
with the exit code; stdout and stderr come back as files in that directory. The host's `/` is the
guest's root, read-only over 9p with a RAM overlay on top, so the project's venv runs unchanged
and nothing the guest writes reaches the host. Prepared by `scripts/lab-deps.sh`.

CLI: `python -m tests.lab.runner [--keep] [--timeout S] -- CMD...`
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = (REPO / ".lab").resolve()  # a symlink to a shared lab: the guest sees only real paths
GUEST_SHARE = "/run/lab"
QEMU = "qemu-system-x86_64"
MIN_QEMU = (8, 0)
BOOT_ATTEMPTS = 3  # a boot and two more (see Lab.start)
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_PATH = f"{REPO / '.venv' / 'bin'}:{_SYSTEM_PATH}"
#: Slack for TCG on a loaded CI machine on top of a command's own timeout.
HOST_GRACE = 30.0
KILL_AFTER = 5

AGENT = r"""#!/bin/sh
# PID 1 of the lab guest: run /run/lab/cmd/ID.sh for each "ID TIMEOUT" line on the port.
W=/run/lab
port=
for d in /sys/class/virtio-ports/*; do
    [ "$(cat "$d/name" 2>/dev/null)" = lab.ctl ] && port=/dev/${d##*/}
done
if [ -z "$port" ]; then
    echo "lab-agent: no lab.ctl virtio port" >&2
    echo o > /proc/sysrq-trigger
fi
exec 3<>"$port"
# No udev: load drivers for new devices (VFs) from uevents, and coldplug the test devices.
busybox uevent /bin/sh -c \
    '[ "$ACTION" = add ] && [ -n "$MODALIAS" ] && exec /sbin/modprobe -q -b "$MODALIAS"' &
# Coldplug only behind bus 00: the chipset's own devices (SATA, SMBus, watchdog) cost boot time.
for d in /sys/bus/pci/devices/*; do
    case "${d##*/}" in *:00:*) ;; *) cat "$d/modalias" ;; esac
done | sort -u | xargs -r /sbin/modprobe -q -b -a
[ -n "__MODULES__" ] && /sbin/modprobe -q -a __MODULES__
echo "ready $(uname -r)" >&3
while read -r id t <&3; do
    [ "$id" = quit ] && break
    timeout -k __KILL__ "$t" env -i /bin/sh "$W/cmd/$id.sh" \
        > "$W/out/$id.out" 2> "$W/out/$id.err" < /dev/null
    echo "done $id $?" >&3
done
sync
echo o > /proc/sysrq-trigger
sleep 10
"""


# RCU stall reports after which the guest counts as hung: one can be a passing hiccup of a
# loaded host; the hangs seen here repeated every ~21 s and never recovered
STALLS_DEAD = 3


class LabError(RuntimeError):
    """The lab itself failed (boot, guest hang, QEMU death); the message names the console log."""


class LabNotPrepared(LabError):
    """`make lab-deps` has not been run (or QEMU is too old)."""


class LabTimeout(LabError):
    """A command outlived its timeout and was killed inside the guest."""

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


T = TypeVar("T")


def guest_died(e: BaseException) -> bool:
    """The guest or QEMU itself failed (not the command): worth one fresh boot.

    Both are emulator faults seen here under TCG: a vCPU whose timer stops firing for good
    (repeated RCU stalls), and QEMU 10 aborting in iotlb_to_section() during nested vfio.
    """
    text = str(e)
    return (
        isinstance(e, LabError)
        and not isinstance(e, LabTimeout)
        and any(w in text for w in ("no answer from the guest", "vCPU stalled", "QEMU exited"))
    )


def emulator_crashed(e: BaseException) -> bool:
    """QEMU died of a signal (abort, segfault) or a vCPU stalled for good: TCG's faults."""
    text = str(e)
    return isinstance(e, LabError) and ("QEMU exited with status -" in text or "vCPU stalled" in text)


def once_more_if_guest_died(lab: Lab, scenario: Callable[[Lab], T]) -> T:
    """Run a recorded scenario; one fresh boot and a second run when the emulator failed."""
    try:
        return scenario(lab)
    except Exception as e:
        if not guest_died(e):
            raise
        lab.restart(e)
        return scenario(lab)


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    returncode: int
    seconds: float = 0.0

    def check(self) -> Result:
        """Raise with both streams when the command failed: a failing assert should say why."""
        if self.returncode != 0:
            raise AssertionError(
                f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
            )
        return self


@dataclass(frozen=True)
class Artifacts:
    """What `scripts/lab-deps.sh` leaves in .lab/."""

    kernel_version: str
    vmlinuz: Path
    initramfs: Path
    modules: Path


@dataclass(frozen=True)
class LabConfig:
    """The emulated machine. Add devices here (or via `extra_args`) rather than in tests."""

    igb_pfs: int = 2
    nvme: bool = True
    nvme_max_vfs: int = 4
    memory: str = "2G"
    smp: int = 2
    cpu: str = "max"
    boot_timeout: float = 180.0
    #: Loaded before the first command, so the first VFs bind at once (udev would race).
    modules: tuple[str, ...] = ("igbvf",)
    cmdline_extra: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: The emulator binary (a test swaps in a wrapper that crashes the way QEMU has).
    qemu: str = QEMU


def qemu_version(binary: str = QEMU) -> tuple[int, int] | None:
    exe = shutil.which(binary)
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def find_artifacts(lab_dir: Path = LAB_DIR) -> Artifacts:
    """Locate the prepared kernel; raise LabNotPrepared saying what is missing."""
    hint = "run `make lab-deps` (scripts/lab-deps.sh, as root)"
    version = qemu_version()
    if version is None or version < MIN_QEMU:
        got = "not installed" if version is None else f"{version[0]}.{version[1]}"
        raise LabNotPrepared(f"QEMU >= 8 needed for igb SR-IOV, {QEMU} is {got}: {hint}")
    try:
        kver = (lab_dir / "kernel-version").read_text().strip()
    except OSError:
        raise LabNotPrepared(f"no lab kernel in {lab_dir}: {hint}") from None
    kernel = lab_dir / "kernel"
    vmlinuz = kernel / "boot" / f"vmlinuz-{kver}"
    modules = next(
        (
            p
            for p in (kernel / "lib/modules" / kver, kernel / "usr/lib/modules" / kver)
            if p.is_dir()
        ),
        None,
    )
    initramfs = lab_dir / "initramfs.cpio.gz"
    for need in (vmlinuz, initramfs):
        if not need.is_file():
            raise LabNotPrepared(f"missing {need}: {hint}")
    if modules is None:
        raise LabNotPrepared(f"no modules for {kver} under {kernel}: {hint}")
    # resolved: the guest sees the host's / under /host, where an absolute symlink on the way
    # (a worktree's .lab -> the shared one) would point into the guest's own root instead
    return Artifacts(kver, vmlinuz.resolve(), initramfs.resolve(), modules.resolve())


def qemu_args(cfg: LabConfig, art: Artifacts, boot_dir: Path) -> list[str]:
    """The QEMU command line: pure, so the machine's shape can be checked without booting."""
    share = boot_dir / "share"
    for p in (art.modules, share):
        if re.search(r"[\s,'\"]", str(p)):
            raise LabError(f"lab paths must not contain spaces, commas or quotes: {p}")
    cmdline = [
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "loglevel=4",
        "intel_iommu=on",
        "iommu=pt",
        f"labkver={art.kernel_version}",
        f"labkdir={art.modules}",
        f"labrepo={REPO}",
        *cfg.cmdline_extra,
    ]
    args = [
        cfg.qemu,
        "-machine", "q35,accel=tcg",
        "-cpu", cfg.cpu,
        "-smp", str(cfg.smp),
        "-m", cfg.memory,
        "-display", "none",
        "-no-reboot",
        "-nodefaults",
        "-serial", f"file:{boot_dir / 'console.log'}",
        "-kernel", str(art.vmlinuz),
        "-initrd", str(art.initramfs),
        "-append", " ".join(cmdline),
        "-device", "intel-iommu,intremap=on",
        "-fsdev", "local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=hostroot",
        "-fsdev", f"local,id=fs1,path={share},security_model=none,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=fs1,mount_tag=work",
        "-chardev", f"pipe,id=ctl,path={boot_dir / 'ctl'}",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtserialport,chardev=ctl,name=lab.ctl",
    ]  # fmt: skip
    port = 0
    for i in range(cfg.igb_pfs):
        port += 1
        args += [
            "-device", f"pcie-root-port,id=rp{port},chassis={port},slot={port}",
            "-netdev", f"user,id=n{i},restrict=on",
            "-device", f"igb,bus=rp{port},netdev=n{i},mac=52:54:00:12:34:{i + 1:02x}",
        ]  # fmt: skip
    if cfg.nvme:
        port += 1
        args += [
            "-device", f"pcie-root-port,id=rp{port},chassis={port},slot={port}",
            "-device", "nvme-subsys,id=nvsub0",
            "-device",
            f"nvme,bus=rp{port},id=nvme0,serial=lab0,subsys=nvsub0,"
            f"sriov_max_vfs={cfg.nvme_max_vfs},sriov_vq_flexible={2 * cfg.nvme_max_vfs},"
            f"sriov_vi_flexible={cfg.nvme_max_vfs},max_ioqpairs={2 * cfg.nvme_max_vfs + 4},"
            "msix_qsize=16",
            "-drive", f"file={boot_dir / 'nvme.img'},if=none,id=nvm,format=raw",
            "-device", "nvme-ns,drive=nvm,bus=nvme0,nsid=1",
        ]  # fmt: skip
    return args + list(cfg.extra_args)


def command_script(cmd: str | Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    """The guest-side script for one command: a clean environment, then the command."""
    text = cmd if isinstance(cmd, str) else shlex.join(cmd)
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f"cd {shlex.quote(cwd)} || exit 125")
    return "\n".join([*lines, text, ""])


def _tail(path: Path, n: int) -> str:
    """The last N lines of a log, or "" when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class Lab:
    """One booted guest. Use as a context manager; `run` as often as needed."""

    def __init__(self, config: LabConfig | None = None, *, keep: bool = False) -> None:
        self.config = config or LabConfig()
        self.keep = keep
        self.kernel_version = ""
        self.boot_seconds = 0.0
        self.boot_dir = Path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_guest = -1
        self._from_guest = -1
        self._buf = b""
        self._seq = 0
        self.commands = 0
        self.command_seconds = 0.0
        self._failed = False
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._failed = True
        self.close()

    @property
    def console_log(self) -> Path:
        return self.boot_dir / "console.log"

    @property
    def share(self) -> Path:
        """Host side of the guest's /run/lab: drop input files here."""
        return self.boot_dir / "share"

    def start(self) -> None:
        """Boot; boot again (up to BOOT_ATTEMPTS in all) when the emulator itself failed.

        A boot has nothing to lose. QEMU 10.0.2 under TCG with the vIOMMU sometimes aborts
        while the guest boots, the machine's dozen other boots in the same run fine:
        ``system/physmem.c:2678: iotlb_to_section: Assertion `section_index <
        d->map.sections_nb' failed`` (qemu.log of a CI boot, two CI runs in a row). A boot
        that merely timed out is not retried: that is more likely the kernel or the agent.
        """
        for attempt in range(BOOT_ATTEMPTS):
            try:
                self._start()
                return
            except BaseException as e:
                self._failed = True
                self.close()
                if attempt + 1 == BOOT_ATTEMPTS or not emulator_crashed(e):
                    raise
                print(f"lab: {str(e).splitlines()[0]}; booting again", file=sys.stderr)
                self._failed, self._buf, self._seq = False, b"", 0

    def _start(self) -> None:
        art = find_artifacts()
        runs = LAB_DIR / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        self.boot_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
        for sub in ("share/cmd", "share/out"):
            (self.boot_dir / sub).mkdir(parents=True)
        agent = AGENT.replace("__KILL__", str(KILL_AFTER))
        agent = agent.replace("__MODULES__", " ".join(self.config.modules))
        (self.share / "agent.sh").write_text(agent)
        if self.config.nvme:
            with open(self.boot_dir / "nvme.img", "wb") as f:
                f.truncate(64 << 20)
        for end in ("in", "out"):
            os.mkfifo(self.boot_dir / f"ctl.{end}")
        # O_RDWR: neither open blocks waiting for QEMU, and EOF never appears while we live.
        self._to_guest = os.open(self.boot_dir / "ctl.in", os.O_RDWR)
        self._from_guest = os.open(self.boot_dir / "ctl.out", os.O_RDWR | os.O_NONBLOCK)
        args = qemu_args(self.config, art, self.boot_dir)
        (self.boot_dir / "qemu.args").write_text(shlex.join(args) + "\n")
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=open(self.boot_dir / "qemu.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        line = self._readline(time.monotonic() + self.config.boot_timeout, "boot")
        if not line.startswith("ready "):
            self._die(f"unexpected agent greeting {line!r}")
        self.kernel_version = line.split(" ", 1)[1]
        self.boot_seconds = time.monotonic() - t0

    def close(self) -> None:
        """Power off; keep the boot directory (console log) if anything failed or keep=True."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.write(self._to_guest, b"quit 0\n")
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._kill()
        for fd in (self._to_guest, self._from_guest):
            if fd >= 0:
                os.close(fd)
        self._to_guest = self._from_guest = -1
        self._proc = None
        if self.boot_dir != Path() and not (self.keep or self._failed):
            shutil.rmtree(self.boot_dir, ignore_errors=True)

    # -- commands ---------------------------------------------------------------------------
    def run(
        self,
        cmd: str | Sequence[str],
        timeout: float = 60.0,
        *,
        cwd: str = "/",
        env: Mapping[str, str] | None = None,
        check: bool = False,
        retry_on_hang: bool = False,
    ) -> Result:
        """Run CMD (a shell string, or argv) in the guest as root; raise LabTimeout past TIMEOUT.

        ``retry_on_hang``: for a command that needs nothing from earlier commands of this boot,
        a guest that stops answering (TCG occasionally stalls a vCPU's timer for good: the
        console shows repeated RCU stalls) is rebooted once and the command run again there.
        """
        try:
            return self._run(cmd, timeout, cwd=cwd, env=env, check=check)
        except LabError as e:
            if not retry_on_hang or not guest_died(e):
                raise
            self.restart(e)
            return self._run(cmd, timeout, cwd=cwd, env=env, check=check)

    def restart(self, why: BaseException) -> None:
        """A fresh boot after the guest hung or QEMU crashed (the old boot dir is kept)."""
        print(f"lab: {str(why).splitlines()[0]}; rebooting once", file=sys.stderr)
        self.close()
        self._failed, self._buf, self._seq = False, b"", 0
        self.start()

    def _run(
        self,
        cmd: str | Sequence[str],
        timeout: float,
        *,
        cwd: str,
        env: Mapping[str, str] | None,
        check: bool,
    ) -> Result:
        with self._lock:
            if self._proc is None or self._failed:
                raise LabError(f"lab is not running (console: {self.console_log})")
            self._seq += 1
            cid = str(self._seq)
            full_env = {
                "PATH": GUEST_PATH,
                "HOME": "/root",
                "LANG": "C.UTF-8",
                "TERM": "dumb",
                "PYTHONDONTWRITEBYTECODE": "1",
                "VFCTL_LAB": "guest",
                **self.config.env,
                **(env or {}),
            }
            script = self.share / "cmd" / f"{cid}.sh"
            tmp = script.with_suffix(".tmp")
            tmp.write_text(command_script(cmd, cwd, full_env))
            tmp.rename(script)
            secs = max(1, int(timeout + 0.999))
            t0 = time.monotonic()
            os.write(self._to_guest, f"{cid} {secs}\n".encode())
            line = self._readline(t0 + secs + KILL_AFTER + HOST_GRACE, f"command {cmd!r}")
            took = time.monotonic() - t0
            parts = line.split()
            if len(parts) != 3 or parts[:2] != ["done", cid]:
                self._die(f"agent answered {line!r} to command {cid}")
            out = self.share / "out"
            result = Result(
                (out / f"{cid}.out").read_text(errors="replace"),
                (out / f"{cid}.err").read_text(errors="replace"),
                int(parts[2]),
                took,
            )
            self.commands += 1
            self.command_seconds += took
        if result.returncode in (124, 137) and took >= secs:
            raise LabTimeout(f"command {cmd!r} timed out after {secs} s in the guest", result)
        return result.check() if check else result

    def write(self, name: str, data: str | bytes) -> str:
        """Put a file into the share; returns its path inside the guest."""
        path = self.share / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        path.write_bytes(data)
        return f"{GUEST_SHARE}/{name}"

    # -- internals --------------------------------------------------------------------------
    def _readline(self, deadline: float, what: str) -> str:
        assert self._proc is not None
        next_look = time.monotonic() + 10
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self._die(f"no answer from the guest within the time limit ({what})")
            if time.monotonic() >= next_look:
                next_look = time.monotonic() + 10
                if self._stalls() >= STALLS_DEAD:
                    self._die(f"guest vCPU stalled: repeated RCU stall reports ({what})")
            ready, _, _ = select.select([self._from_guest], [], [], min(left, 0.5))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    self._buf += os.read(self._from_guest, 4096)
            elif self._proc.poll() is not None:
                self._die(f"QEMU exited with status {self._proc.returncode} ({what})")
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _stalls(self) -> int:
        """RCU stall reports on the console so far (a TCG vCPU whose timer stopped firing)."""
        try:
            return self.console_log.read_text(errors="replace").count("detected stalls on CPUs")
        except OSError:
            return 0

    def _die(self, why: str) -> None:
        self._failed = True
        self._kill()
        tail = _tail(self.console_log, 15)
        qemu_tail = _tail(self.boot_dir / "qemu.log", 5)  # an abort says why here, not on the console
        raise LabError(
            f"lab failed: {why}; console log: {self.console_log}; "
            f"QEMU log: {self.boot_dir / 'qemu.log'}\n{tail}"
            + (f"\n--- QEMU log\n{qemu_tail}" if qemu_tail else "")
        )

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab.runner", description="Run one command in the real-kernel lab."
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="command timeout (s)")
    parser.add_argument("--keep", action="store_true", help="keep the boot directory")
    parser.add_argument("--igb", type=int, default=LabConfig.igb_pfs, help="number of igb PFs")
    parser.add_argument("--no-nvme", action="store_true", help="no NVMe SR-IOV controller")
    parser.add_argument("cmd", nargs="+", help="command (after --)")
    ns = parser.parse_args(argv)
    cfg = LabConfig(igb_pfs=ns.igb, nvme=not ns.no_nvme)
    try:
        with Lab(cfg, keep=ns.keep) as lab:
            print(
                f"lab: kernel {lab.kernel_version}, booted in {lab.boot_seconds:.1f} s,"
                f" dir {lab.boot_dir}",
                file=sys.stderr,
            )
            cmd = ns.cmd[0] if len(ns.cmd) == 1 else ns.cmd
            res = lab.run(cmd, timeout=ns.timeout)
    except LabTimeout as e:
        sys.stdout.write(e.result.stdout)
        sys.stderr.write(e.result.stderr)
        print(f"lab: {e}", file=sys.stderr)
        return 124
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 125
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
