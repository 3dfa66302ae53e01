"""The Backend protocol: how a VM manager (libvirt, Proxmox) takes part in discover and plan.

Backends report which VFs their VMs hold (inventory) and turn "VF wants to be in VM" into
plan actions (ops registered in ``vfctl.plan.OPS`` under ``<backend>.<verb>``) so attach and
detach run through the same journaled engine as host operations. Every backend implements
every method (an absent capability answers empty, or None for ``pools``): callers never
probe with getattr/hasattr. State lives in the instance (one per connection, shared by
planning and execution), never in module globals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vfctl.model import PF, VF, Attachment, PoolRef
from vfctl.plan import Action


@dataclass(frozen=True)
class AttachRequest:
    """What the user asked for; each backend reads the options it knows.

    ``planned``: actions earlier requests of the same plan (a profile) already produced, so
    a backend does not hand out twice what one of them takes (a Proxmox hostpciN slot).
    """

    vm: str
    pf: PF
    vf: VF
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    planned: tuple[Action, ...] = ()


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

    def warnings(self) -> list[str]:
        """What reading or planning through this connection found worth saying, in order."""
        ...

    def pending(self) -> list[dict[str, Any]]:
        """Changes written to running VMs that wait for a stop and start (Proxmox)."""
        ...

    def pool_refs(self) -> dict[str, PoolRef]:
        """VF address -> the pool (Proxmox mapping) it is an entry of; after ``attachments``."""
        ...

    def pools(self, pfs: Sequence[PF]) -> dict[str, str] | None:
        """PCI address -> hostdev network pooling it (libvirt); None: no such concept here."""
        ...
