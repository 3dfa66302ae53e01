"""``list --json`` and ``show PF --json`` as plain functions of a session.

The typer commands (vfctl/cli_read.py) and the lean entry point (vfctl/entry.py, which
answers these two without importing typer) both run these, so the documents, warnings and
errors cannot drift apart; tests/host/test_fastpath.py compares the two paths' output.
"""

from __future__ import annotations

from vfctl import jsontext, pciids, render
from vfctl.model import PF, HostModel
from vfctl.session import Session

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any


def pf_doc(p: PF, pooled: dict[str, str] | None) -> dict[str, Any]:
    """A PF's JSON; with a libvirt backend, ``hostdev_network`` on the PF and each VF."""
    doc: dict[str, Any] = p.to_json()
    if pooled is not None:
        doc["hostdev_network"] = pooled.get(p.address)
        for v in doc["vfs"]:
            v["hostdev_network"] = pooled.get(v["address"])
    return doc


def list_json(s: Session) -> None:
    """``vfctl list --json`` (with or without ``--all``: the document holds every VF)."""
    m = pciids.named(s.model(lenient=True))
    pooled = s.pools(m)
    if pooled is None:  # the common document: encoded without a dict per VF
        render.emit_json_chunks(jsontext.list_chunks(m.pfs))
    else:
        render.emit_json({"pfs": [pf_doc(p, pooled) for p in m.pfs]})
    for p in m.pfs:
        for problem in p.problems:
            render.warn(f"{p.address}: {problem}")


def show_pf(s: Session, name: str) -> tuple[PF, dict[str, str] | None]:
    """The PF ``name`` (netdev or address) and its pooling, problems warned about."""
    from vfctl.discover import resolve_pf

    p = resolve_pf(pciids.named(s.model(lenient=True)), name, s.host())
    pooled = s.pools(HostModel((p,)))
    for problem in p.problems:
        render.warn(f"{p.address}: {problem}")
    return p, pooled


def show_json(s: Session, name: str) -> None:
    """``vfctl show PF --json``."""
    p, pooled = show_pf(s, name)
    if pooled is None:
        render.emit_json_chunks(jsontext.pf_chunks(p))
    else:
        render.emit_json(pf_doc(p, pooled))
