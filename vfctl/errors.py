"""Exceptions carry their exit code so the CLI maps every failure the same way (DESIGN §3)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Self


class VfctlError(Exception):
    """Base: a one-line message and the documented exit code."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def with_message(self, message: str) -> Self:
        """The same error (class, exit code, structured fields) with another message: for
        callers that add where it happened, so no field is lost by rebuilding the error."""
        new = type(self).__new__(type(self), message)  # no __init__: subclasses differ in it
        new.__dict__.update(self.__dict__)
        new.args = (message,)
        new.message = message
        return new


class UsageError(VfctlError):
    exit_code = 2
    kind = "invalid"


class NotFoundError(VfctlError):
    exit_code = 3
    kind = "not-found"


class RefusedError(VfctlError):
    """Unsafe or in use. ``override`` is the flag that lifts this refusal ("--force",
    "--force-host-nic"), or None when nothing does: callers ask it, never the message."""

    exit_code = 4
    kind = "refused"

    def __init__(
        self, message: str, *, hint: str | None = None, override: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.override = override


class HostError(VfctlError):
    exit_code = 5
    kind = "host"


class BackendError(VfctlError):
    exit_code = 6
    kind = "backend"


class LockError(VfctlError):
    exit_code = 7
    kind = "lock"


EXIT_CODES = {  # the man page's EXIT STATUS; README.md's table says the same
    0: "success, whether or not something changed",
    2: "usage or invalid input (profile, names, values)",
    3: "not found (PF, VF, VM, node, or a file or directory the command line names)",
    4: "refused: unsafe or in use; --force overrides where offered",
    5: "host operation failed (rolled back)",
    6: "backend (libvirt/Proxmox) failed (rolled back)",
    7: "the host lock was not acquired in time",
}
