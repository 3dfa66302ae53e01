#!/usr/bin/python
"""Ansible module: bring a host's SR-IOV state to a vfctl profile (runs `vfctl apply --json`)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vfctl_apply
short_description: Apply a vfctl SR-IOV profile on the managed host
version_added: "0.1.0"
author:
  - vfctl maintainers
description:
  - Runs C(vfctl apply --json PROFILE) on the target, with C(--check) in check mode and
    C(--diff) in diff mode, and maps vfctl's JSON envelope to changed/failed/msg/diff.
  - vfctl must be installed on the target; the profile is a file on the target (copy or
    template it first), or inline YAML given with I(content).
options:
  profile:
    description: Path of the profile on the target.
    type: path
  content:
    description: The profile itself (YAML text), passed to vfctl on standard input.
    type: str
  vfctl:
    description: vfctl executable on the target.
    type: str
    default: vfctl
  root:
    description: Host root (vfctl --root); default is vfctl's own (VFCTL_ROOT or /).
    type: path
  backend:
    description: vfctl --backend (auto, none, libvirt, proxmox).
    type: str
  attach:
    description: Run the attach phase (false adds --no-attach).
    type: bool
    default: true
  wait:
    description: Seconds to wait for the host lock.
    type: float
    default: 60
notes:
  - Supports check mode (vfctl --check, nothing changes and C(changed) says whether it would) and
    diff mode (the host's SR-IOV state before and after, as profile YAML).
  - Exit codes and the JSON envelope are vfctl's contract (docs/json.md in vfctl).
requirements:
  - vfctl on the target (Debian package or pipx)
"""

EXAMPLES = r"""
- name: SR-IOV state of this host
  vfctl.sriov.vfctl_apply:
    profile: /etc/vfctl/profile.yaml

- name: An inline profile, host part only (no VM attachments), Proxmox backend
  vfctl.sriov.vfctl_apply:
    content: |
      version: 1
      pfs:
        - match: {netdev: enp1s0f0}
          total-vfs: 4
          vfs:
            - {id: "0-3", driver: vfio-pci, mac-address: auto}
    attach: false
    backend: proxmox
"""

RETURN = r"""
actions:
  description: The actions vfctl did (or, in check mode, would do), each op, target, detail.
  returned: always
  type: list
  elements: dict
  sample: [{"op": "sriov.numvfs", "target": "0000:01:00.0 sriov_numvfs", "detail": "0 -> 4"}]
rolled_back:
  description: The actions undone after a failure.
  returned: always
  type: list
  elements: dict
warnings_vfctl:
  description: vfctl's warnings (each is also an Ansible warning).
  returned: always
  type: list
  elements: str
errors:
  description: A bad profile's located problems (file, line, column, path, message).
  returned: when the profile is invalid
  type: list
  elements: dict
rc:
  description: vfctl's exit code (0 ok, 2 invalid, 3 not found, 4 refused, 5 host, 6 backend, 7 lock).
  returned: always
  type: int
"""

import json  # noqa: E402  (Ansible modules put their docs first)

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "profile": {"type": "path"},
            "content": {"type": "str"},
            "vfctl": {"type": "str", "default": "vfctl"},
            "root": {"type": "path"},
            "backend": {"type": "str"},
            "attach": {"type": "bool", "default": True},
            "wait": {"type": "float", "default": 60.0},
        },
        mutually_exclusive=[("profile", "content")],
        required_one_of=[("profile", "content")],
        supports_check_mode=True,
    )
    p = module.params
    exe = module.get_bin_path(p["vfctl"], required=True) if "/" not in p["vfctl"] else p["vfctl"]
    cmd = [exe]
    if p["root"]:
        cmd += ["--root", p["root"]]
    if p["backend"]:
        cmd += ["--backend", p["backend"]]
    cmd += ["apply", "--json", "--wait", str(p["wait"])]
    if module.check_mode:
        cmd.append("--check")
    if module._diff:
        cmd.append("--diff")
    if not p["attach"]:
        cmd.append("--no-attach")
    cmd.append(p["profile"] or "-")
    rc, out, err = module.run_command(
        cmd, data=p["content"], binary_data=True, environ_update={"VFCTL_VIA": "ansible"}
    )
    try:
        doc = json.loads(out)
    except ValueError:
        module.fail_json(
            msg=f"vfctl printed no JSON (exit {rc}): {err.strip() or out.strip()}", rc=rc, cmd=cmd
        )
    result = {
        "changed": bool(doc.get("changed")),
        "actions": doc.get("actions", []),
        "rolled_back": doc.get("rolled_back", []),
        "warnings_vfctl": doc.get("warnings", []),
        "rc": rc,
    }
    if module._diff and isinstance(doc.get("diff"), dict):
        result["diff"] = {
            "before": doc["diff"].get("before", ""),
            "after": doc["diff"].get("after", ""),
            "before_header": "host",
            "after_header": p["profile"] or "profile",
        }
    for w in doc.get("warnings", []):
        module.warn(str(w))
    error = doc.get("error")
    if rc != 0 or error:
        msg = (error or {}).get("message") or err.strip() or f"vfctl exited {rc}"
        result["changed"] = False
        if doc.get("errors"):
            result["errors"] = doc["errors"]
        module.fail_json(msg=msg, kind=(error or {}).get("kind"), **result)
    result["msg"] = (
        f"{len(result['actions'])} action(s) {'would be ' if module.check_mode else ''}applied"
        if result["changed"]
        else "already in the desired state"
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
