"""The ``libvirt.*`` ops: attach/detach one element in one scope, verified by re-reading.

Idempotent (a rerun, or the undo of a half-done step, finds the element already there or
gone) and verified (libvirt may report success and change nothing). Op names and params
are what journals hold: never rename them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from vfctl.backends.libvirt import AFFECT, LibvirtBackend, libvirt_errors
from vfctl.errors import BackendError
from vfctl.plan import Context, op

LIVE_DETACH_WAIT = 10.0  # seconds the guest gets to release a device after libvirt's own wait


def apply_attach(be: LibvirtBackend, p: Mapping[str, Any]) -> None:
    dom = be.lookup(p["domain"])
    scope, address = p["scope"], p["address"]
    if be.present(dom, scope, address):
        return  # idempotent: a rerun or an undo of a half-done detach
    with libvirt_errors(f"attach {address} to {p['vm']} ({scope})"):
        dom.attachDeviceFlags(p["xml"], AFFECT[scope])
    if not be.present(dom, scope, address):
        raise BackendError(
            f"libvirt attach {address} to {p['vm']} ({scope}) reported "
            "success but the domain XML does not hold it"
        )


def apply_detach(be: LibvirtBackend, p: Mapping[str, Any]) -> None:
    dom = be.lookup(p["domain"])
    scope, address = p["scope"], p["address"]
    present = be.present(dom, scope, address)
    if not present:
        return  # idempotent
    exact = next((f for f in present if f.xml == p["xml"]), present[0])
    with libvirt_errors(f"detach {address} from {p['vm']} ({scope})"):
        dom.detachDeviceFlags(exact.xml, AFFECT[scope])
    deadline = time.monotonic() + (LIVE_DETACH_WAIT if scope == "live" else 0.0)
    while True:  # a live detach completes when the guest releases the device
        now = be.present(dom, scope, address)
        if len(now) < len(present):
            return
        if time.monotonic() >= deadline:
            raise BackendError(
                f"libvirt detach {address} from {p['vm']} ({scope}) "
                "reported success but the domain XML still holds it"
            )
        time.sleep(0.2)


def backend_of(ctx: Context, p: Mapping[str, Any]) -> LibvirtBackend:
    """The run's instance for this URI (the one that planned, when the session has it)."""
    be = ctx.backend("libvirt", {"uri": p["uri"]})
    if not isinstance(be, LibvirtBackend):
        raise BackendError("the libvirt backend factory returned something else")
    return be


@op("libvirt.attach")
def _op_attach(ctx: Context, p: Mapping[str, Any]) -> None:
    apply_attach(backend_of(ctx, p), p)


@op("libvirt.detach")
def _op_detach(ctx: Context, p: Mapping[str, Any]) -> None:
    apply_detach(backend_of(ctx, p), p)
