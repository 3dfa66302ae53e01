"""Boot persistence: VFs and their sysfs/netlink settings vanish at reboot; a oneshot unit
re-applies the profile early, before the network stack and the VM managers start guests.

Every path is root-relative (``--root``), so the install is testable in a directory; the unit
text itself names the target system's absolute paths.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNIT = "vfctl.service"
PROFILE_DIR = "etc/vfctl"
PROFILE = f"{PROFILE_DIR}/profile.yaml"
UNIT_PATH = f"etc/systemd/system/{UNIT}"
# the Debian package ships the unit here; persist enable only links it (as systemctl enable)
PACKAGED_UNIT_PATH = f"usr/lib/systemd/system/{UNIT}"
WANTS_PATH = f"etc/systemd/system/multi-user.target.wants/{UNIT}"

# Guests must find their VFs: libvirt starts autostart domains when its daemon starts,
# libvirt-guests resumes saved ones, Proxmox starts onboot VMs from pve-guests and HA
# resources from pve-ha-lrm. Ordering against a unit a host does not have is a no-op, so all
# are listed. pve-cluster (pmxcfs) is deliberately absent: it starts after network.target,
# and the boot run neither needs nor waits for it.
GUEST_UNITS = (
    "libvirtd.service",
    "virtqemud.service",
    "libvirt-guests.service",
    "pve-guests.service",
    "pve-ha-lrm.service",
)
# The boot run is host-only by construction: no VM manager is consulted (none is up yet,
# and none may be asked: pvesh fails before pmxcfs runs, libvirt's sockets may refuse), so
# in-use facts come from the host itself (/dev/vfio holders, netdevs) and nothing is attached.
BOOT_ARGS = ("--backend", "none", "apply", "--no-attach", "--wait", "120")


def boot_command(exe: str, root_profile: str = f"/{PROFILE}") -> list[str]:
    """The unit's ExecStart as argv (tests run exactly this)."""
    return [exe, *BOOT_ARGS, root_profile]


_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def systemd_quote(arg: str) -> str:
    """One word of an ExecStart= line, quoted for systemd, not for a shell.

    systemd splits ExecStart= into words itself (src/core/load-fragment.c, config_parse_exec:
    extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE), then expands specifiers
    (``%``, so ``%%`` is a literal percent) and environment variables (``$``, so ``$$``);
    see systemd.service(5), "Command lines". shlex's ``'"'"'`` trick is shell syntax, not
    systemd's, and a newline would end the directive: control characters are refused.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in arg):
        raise ValueError(f"control characters in {arg!r}")
    text = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(exe: str, root_profile: str = f"/{PROFILE}") -> str:
    """The unit: after udev has bound the PF drivers, before networking and guests."""
    cmd = " ".join(systemd_quote(w) for w in boot_command(exe, root_profile))
    return f"""\
# Enabled by `vfctl persist enable`; disabled by `vfctl persist disable`.
[Unit]
Description=Apply the SR-IOV profile {root_profile} (vfctl)
Documentation=man:systemd.service(5)
DefaultDependencies=no
# PF drivers are loaded by udev's coldplug; the VFs they create need them bound.
Wants=systemd-udev-trigger.service network-pre.target
After=systemd-udev-trigger.service systemd-modules-load.service local-fs.target
Before=network-pre.target {" ".join(GUEST_UNITS)}
Before=shutdown.target
Conflicts=shutdown.target
ConditionPathExists={root_profile}

[Service]
Type=oneshot
RemainAfterExit=yes
# the history says which runs the boot made (docs/operations.md)
Environment=VFCTL_VIA=boot
ExecStart={cmd}
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Change:
    path: str  # root-relative
    what: str  # "write" | "link" | "remove"

    def to_json(self) -> dict[str, Any]:
        return {"op": f"persist.{self.what}", "target": "/" + self.path, "detail": self.what}


def _inside(root: Path, p: Path) -> None:
    """Refuse a directory that symlinks lead out of a --root tree (the real / is all inside)."""
    real_root = os.path.realpath(root)
    if real_root == "/":
        return
    q = p
    while not os.path.lexists(q) and q != q.parent:  # the nearest part that exists
        q = q.parent
    real = os.path.realpath(q)
    if real != real_root and not real.startswith(real_root + "/"):
        from vfctl.errors import RefusedError

        raise RefusedError(
            f"{p} resolves to {real}, outside the root {real_root}: refusing to write there"
        )


def _mkdir(root: Path, d: Path) -> None:
    _inside(root, d)
    d.mkdir(parents=True, exist_ok=True)
    _inside(root, d)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> bool:
    p = root / rel
    _mkdir(root, p.parent)
    if p.is_file() and not p.is_symlink() and p.read_text(encoding="utf-8") == text:
        return False
    tmp = p.with_name(p.name + ".vfctl-tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover (or planted link) is never followed: O_EXCL|O_NOFOLLOW
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, p)  # replaces a symlink at p itself, never its target
    return True


def enable(root: Path, profile_text: str, exe: str, check: bool = False) -> list[Change]:
    """Install profile + unit and enable it (the wants link). Idempotent."""
    changes: list[Change] = []
    unit = unit_text(exe)
    packaged = root / PACKAGED_UNIT_PATH
    use_packaged = packaged.is_file() and packaged.read_text(encoding="utf-8") == unit
    files = [(PROFILE, profile_text)] + ([] if use_packaged else [(UNIT_PATH, unit)])
    if use_packaged:  # a copy in /etc would shadow the package's unit and its updates
        changes += disable_unit_copy(root, check)
    for rel, text in files:
        cur = root / rel
        _inside(root, cur.parent)
        same = cur.is_file() and not cur.is_symlink() and cur.read_text(encoding="utf-8") == text
        if not same:
            changes.append(Change(rel, "write"))
            if not check:
                _write(root, rel, text)
    link = root / WANTS_PATH
    target = f"/{PACKAGED_UNIT_PATH if use_packaged else UNIT_PATH}"
    if not (link.is_symlink() and os.readlink(link) == target):
        changes.append(Change(WANTS_PATH, "link"))
        if not check:
            _mkdir(root, link.parent)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(target)
    return changes


def disable_unit_copy(root: Path, check: bool) -> list[Change]:
    p = root / UNIT_PATH
    if not (p.is_symlink() or p.exists()):
        return []
    if not check:
        p.unlink()
    return [Change(UNIT_PATH, "remove")]


def _enabled_target(root: Path) -> str | None:
    link = root / WANTS_PATH
    if not link.is_symlink():
        return None
    t = os.readlink(link)
    return t if t in (f"/{UNIT_PATH}", f"/{PACKAGED_UNIT_PATH}") else None


def disable(root: Path, check: bool = False) -> list[Change]:
    """Remove the wants link, the unit and the installed profile. Idempotent.

    A packaged unit (/usr/lib/systemd/system) stays: it belongs to the package."""
    changes: list[Change] = []
    for rel in (WANTS_PATH, UNIT_PATH, PROFILE):
        p = root / rel
        if p.is_symlink() or p.exists():
            _inside(root, p.parent)
            changes.append(Change(rel, "remove"))
            if not check:
                p.unlink()
    return changes


def status(root: Path) -> dict[str, Any]:
    unit = root / UNIT_PATH
    if not unit.is_file() and (root / PACKAGED_UNIT_PATH).is_file():
        unit = root / PACKAGED_UNIT_PATH
    prof = root / PROFILE
    return {
        "unit": "/" + str(unit.relative_to(root)),
        "profile": "/" + PROFILE,
        "installed": unit.is_file(),
        "enabled": _enabled_target(root) is not None,
        "profile_present": prof.is_file(),
    }


def systemd_running(root: Path) -> bool:
    """Only the real root with a running systemd gets daemon-reload / is-active calls."""
    return str(root) == "/" and os.path.isdir("/run/systemd/system")
