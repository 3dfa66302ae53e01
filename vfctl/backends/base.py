"""The Backend protocol: how a VM manager (libvirt, Proxmox) takes part in discover and plan.

Backends report which VFs their VMs hold (inventory) and turn "VF wants to be in VM" into
plan actions (ops registered in ``vfctl.plan.OPS`` under ``<backend>.<verb>``) so attach and
detach run through the same journaled engine as host operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from vfctl.model import PF, VF, Attachment
from vfctl.plan import Action


@dataclass(frozen=True)
class AttachRequest:
    """What the user asked for; each backend reads the options it knows."""

    vm: str
    pf: PF
    vf: VF
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def attachments(self) -> dict[str, list[Attachment]]:
        """Every VF/PCI address held by a VM managed here, keyed by full PCI address."""
        ...

    def plan_attach(self, req: AttachRequest) -> list[Action]:
        """Actions that put the VF into the VM (empty when it is already there)."""
        ...

    def plan_detach(self, req: AttachRequest) -> list[Action]:
        """Actions that take the VF out of the VM (empty when it is not there)."""
        ...

    def params(self) -> dict[str, Any]:
        """JSON-safe connection parameters (never secrets) so journals can reconnect."""
        ...
