"""Boot persistence: VFs and their sysfs/netlink settings vanish at reboot; a oneshot unit
re-applies the profile early, before the network stack and the VM managers start guests.

Every path is root-relative (``--root``), so the install is testable in a directory; the unit
text itself names the target system's absolute paths.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNIT = "vfctl.service"
PROFILE_DIR = "etc/vfctl"
PROFILE = f"{PROFILE_DIR}/profile.yaml"
UNIT_PATH = f"etc/systemd/system/{UNIT}"
WANTS_PATH = f"etc/systemd/system/multi-user.target.wants/{UNIT}"

# Guests must find their VFs: libvirt starts autostart domains when its daemon starts,
# libvirt-guests resumes saved ones, Proxmox starts onboot VMs from pve-guests. Ordering
# against a unit a host does not have is a no-op, so all are listed.
GUEST_UNITS = (
    "libvirtd.service",
    "virtqemud.service",
    "libvirt-guests.service",
    "pve-guests.service",
)


def unit_text(exe: str, root_profile: str = f"/{PROFILE}") -> str:
    """The unit: after udev has bound the PF drivers, before networking and guests."""
    cmd = shlex.join([exe, "apply", "--no-attach", "--wait", "120", root_profile])
    return f"""\
# Installed by `vfctl persist enable`; remove with `vfctl persist disable`.
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


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> bool:
    p = root / rel
    if p.is_file() and p.read_text(encoding="utf-8") == text:
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".vfctl-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, p)
    return True


def enable(root: Path, profile_text: str, exe: str, check: bool = False) -> list[Change]:
    """Install profile + unit and enable it (the wants link). Idempotent."""
    changes: list[Change] = []
    unit = unit_text(exe)
    for rel, text in ((PROFILE, profile_text), (UNIT_PATH, unit)):
        cur = root / rel
        same = cur.is_file() and cur.read_text(encoding="utf-8") == text
        if not same:
            changes.append(Change(rel, "write"))
            if not check:
                _write(root, rel, text)
    link = root / WANTS_PATH
    target = f"/{UNIT_PATH}"
    if not (link.is_symlink() and os.readlink(link) == target):
        changes.append(Change(WANTS_PATH, "link"))
        if not check:
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(target)
    return changes


def disable(root: Path, check: bool = False) -> list[Change]:
    """Remove the wants link, the unit and the installed profile. Idempotent."""
    changes: list[Change] = []
    for rel in (WANTS_PATH, UNIT_PATH, PROFILE):
        p = root / rel
        if p.is_symlink() or p.exists():
            changes.append(Change(rel, "remove"))
            if not check:
                p.unlink()
    return changes


def status(root: Path) -> dict[str, Any]:
    unit = root / UNIT_PATH
    link = root / WANTS_PATH
    prof = root / PROFILE
    return {
        "unit": "/" + UNIT_PATH,
        "profile": "/" + PROFILE,
        "installed": unit.is_file(),
        "enabled": link.is_symlink() and os.readlink(link) == f"/{UNIT_PATH}",
        "profile_present": prof.is_file(),
    }


def systemd_running(root: Path) -> bool:
    """Only the real root with a running systemd gets daemon-reload / is-active calls."""
    return str(root) == "/" and os.path.isdir("/run/systemd/system")
