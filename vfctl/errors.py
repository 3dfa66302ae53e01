"""Exceptions carry their exit code so the CLI maps every failure the same way (DESIGN §3)."""

from __future__ import annotations


class VfctlError(Exception):
    """Base: a one-line message and the documented exit code."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(VfctlError):
    exit_code = 2
    kind = "invalid"


class NotFoundError(VfctlError):
    exit_code = 3
    kind = "not-found"


class RefusedError(VfctlError):
    exit_code = 4
    kind = "refused"


class HostError(VfctlError):
    exit_code = 5
    kind = "host"


class BackendError(VfctlError):
    exit_code = 6
    kind = "backend"


class LockError(VfctlError):
    exit_code = 7
    kind = "lock"


EXIT_CODES = {
    0: "success (changed or not)",
    2: "usage or invalid input",
    3: "not found (PF, VF, VM, node)",
    4: "refused: unsafe or in use (--force needed)",
    5: "host operation failed (rolled back)",
    6: "backend (libvirt/Proxmox) failed (rolled back)",
    7: "host lock not acquired",
}
