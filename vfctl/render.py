"""Output: rich tables for people, exactly one JSON document for programs (DESIGN §3)."""

from __future__ import annotations

import sys

from vfctl import jsoncodec

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from rich.console import Console
    from rich.table import Table

    from vfctl.errors import VfctlError
    from vfctl.model import PF, VF, HostModel
    from vfctl.plan import Result

    out: Console
    err: Console

_consoles: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """`out`/`err` consoles, created on first use so JSON output never imports rich."""
    if name in ("out", "err"):
        if name not in _consoles:
            from rich.console import Console

            stream = sys.stderr if name == "err" else sys.stdout
            # a pipe or a log gets full lines rather than rich's 80-column default
            width = None if stream.isatty() else 200
            _consoles[name] = Console(
                stderr=name == "err", highlight=False, soft_wrap=True, width=width
            )
        return _consoles[name]
    raise AttributeError(name)


def _table(**kw: Any) -> Table:
    from rich.table import Table

    return Table(title_justify="left", **kw)


def emit_json(doc: Any) -> None:
    """One document on stdout; indented for a terminal, compact (C encoder, fast) for pipes."""
    if sys.stdout.isatty():
        import json

        text = json.dumps(doc, indent=2)
    else:
        text = jsoncodec.dumps(doc)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_json_chunks(chunks: Iterable[str]) -> None:
    """As emit_json, for a document already encoded compactly in pieces (vfctl.jsontext):
    each written as it comes, never joined into one string (see jsontext.pf_chunks)."""
    if sys.stdout.isatty():
        import json

        text = json.dumps(json.loads("".join(chunks)), indent=2)  # same keys, order and values
        sys.stdout.write(text + "\n")
    else:
        write = sys.stdout.write
        for chunk in chunks:
            write(chunk)
        write("\n")
    sys.stdout.flush()


def error_document(e: VfctlError, mutating: bool) -> dict[str, Any]:
    """The --json document of a failed command: the mutating envelope or ``{"error": …}``."""
    err = {"kind": e.kind, "message": e.message}
    if mutating:
        from vfctl.plan import ExecutionFailed

        doc: dict[str, Any] = (
            e.result.to_json()
            if isinstance(e, ExecutionFailed)
            else {"changed": False, "actions": [], "rolled_back": [], "warnings": [], "error": err}
        )
    else:
        doc = {"error": err}
    problems = getattr(e, "problems", None)  # a profile's located errors, one per problem
    if problems:
        doc["errors"] = [p.to_json() for p in problems]
    return doc


def failure(e: VfctlError, as_json: bool, mutating: bool) -> int:
    """Report a failed command (with --json its document too); its exit code."""
    if as_json:
        emit_json(error_document(e, mutating))
    print(error_text(e), file=sys.stderr)
    return e.exit_code


def error_text(e: VfctlError) -> str:
    """The stderr lines of a failed command: ``vfctl: error: …`` per line, then the hint."""
    msg = "\n".join(f"vfctl: error: {line}" for line in e.message.splitlines() or [""])
    if e.hint:
        msg += f" (hint: {e.hint})"
    return msg


def esc(v: object) -> str:
    """Host-derived text made literal for rich: a netdev named ``[reverse]eth9`` stays that."""
    from rich.markup import escape

    return escape(str(v))


def row(t: Table, *cells: object) -> None:
    """A table row of plain values: every cell escaped (none of them is vfctl's markup)."""
    t.add_row(*(esc(c) for c in cells))


def warn(text: str, label: str = "warning") -> None:
    """``warning: text`` on stderr; the label is vfctl's markup, the text is escaped."""
    _c("err").print(f"[yellow]{label}:[/] {esc(text)}")


def _yn(v: bool | None) -> str:
    return "-" if v is None else ("on" if v else "off")


def _s(v: object) -> str:
    return "-" if v is None or v == "" else str(v)


def pf_table(model: HostModel, all_vfs: bool) -> Table:
    t = _table(title="SR-IOV physical functions")
    for col in (
        "PF",
        "netdev",
        "driver",
        "vendor:device",
        "name",
        "VFs",
        "autoprobe",
        "NUMA",
        "link",
    ):
        t.add_column(col, no_wrap=col != "name")
    for pf in model.pfs:
        vfs = f"{pf.num_vfs}/{pf.total_vfs}"
        if pf.cap_total_vfs is not None and pf.cap_total_vfs != pf.total_vfs:
            vfs += f" (cap {pf.cap_total_vfs})"
        row(
            t,
            pf.address,
            _s(pf.netdev),
            _s(pf.driver),
            f"{pf.vendor_id}:{pf.device_id}",
            _s(pf.name),
            vfs,
            _yn(pf.autoprobe),
            _s(pf.numa_node),
            _s(pf.link),
        )
        if all_vfs:
            for vf in pf.vfs:
                row(
                    t,
                    f"  └ vf{vf.index} {vf.address}",
                    _s(vf.netdev),
                    _s(vf.driver),
                    f"{vf.vendor_id}:{vf.device_id}",
                    "",
                    "",
                    "",
                    "",
                    f"group {_s(vf.iommu_group)}",
                )
    return t


def vf_table(pf: PF) -> Table:
    t = _table(
        title=esc(f"VFs of {pf.netdev or pf.address} ({pf.address}, {pf.driver or 'no driver'})")
    )
    cols = ("VF", "address", "driver", "netdev", "MAC", "VLAN", "spoof-check", "trust", "link")
    for col in (*cols, "tx rate (Mbps)", "IOMMU group", "attached to"):
        t.add_column(col, no_wrap=True)
    for vf in pf.vfs:
        s = vf.settings
        vlan = "-" if not s.vlan else f"{s.vlan}" + (f" qos {s.qos}" if s.qos else "")
        if s.vlan and s.vlan_proto and s.vlan_proto != "802.1Q":
            vlan += f" {s.vlan_proto}"
        att = vf_use(vf)
        drv = _s(vf.driver) + (
            f" (override {vf.driver_override})"
            if vf.driver_override and vf.driver_override != vf.driver
            else ""
        )
        row(
            t,
            str(vf.index),
            vf.address,
            drv,
            _s(vf.netdev),
            _s(s.mac),
            vlan,
            _yn(s.spoofchk),
            _yn(s.trust),
            _s(s.link_state),
            _rate(s.min_tx_rate, s.max_tx_rate),
            _s(vf.iommu_group),
            att,
        )
    return t


def _rate(lo: int | None, hi: int | None) -> str:
    """TX rate limits in Mbps as `ip link` names them; 0 is no limit, None not reported."""
    if lo is None and hi is None:
        return "-"
    return " ".join(f"{k} {v}" for k, v in (("min", lo), ("max", hi)) if v) or "no limit"


def vf_use(vf: VF) -> str:
    """Configs (attached_to), the running truth (held_by) and pool membership, in one cell."""
    parts = [f"{a.backend}:{a.vm}" for a in vf.attached_to]
    if vf.held_by is not None:
        parts.append(f"held by {vf.held_by.describe()}")
    if vf.pool is not None:
        parts.append(f"pool: {vf.pool.mapping} ({', '.join(vf.pool.vms) or 'no VM'})")
    return ", ".join(parts) or "-"


def pf_summary(pf: PF) -> str:
    cap = f", capability TotalVFs {pf.cap_total_vfs}" if pf.cap_total_vfs is not None else ""
    return (
        f"{pf.netdev or '-'} {pf.address} {pf.vendor_id}:{pf.device_id}"
        f"{f' ({pf.name})' if pf.name else ''} driver {pf.driver or '-'}: "
        f"{pf.num_vfs} of {pf.total_vfs} VFs{cap}; offset {_s(pf.vf_offset)} stride "
        f"{_s(pf.vf_stride)}; VF device {_s(pf.vf_device_id)}; autoprobe {_yn(pf.autoprobe)}; "
        f"IOMMU group {_s(pf.iommu_group)}; ARI {_yn(pf.ari)}"
    )


def result_text(res: Result, check: bool) -> None:
    if not res.actions:
        _c("out").print("nothing to do: already in the desired state")
    else:
        verb = "would do" if check else ("done" if res.error is None else "planned")
        t = _table(title=f"actions ({verb})")
        for col in ("#", "op", "target", "change"):
            t.add_column(col)
        for i, a in enumerate(res.actions, 1):
            row(t, str(i), a.op, a.target, a.detail)
        _c("out").print(t)
    for w in res.warnings:
        warn(w)
    if res.rolled_back:
        _c("err").print(
            "rolled back: " + ", ".join(f"{a.target} ({a.detail})" for a in res.rolled_back),
            markup=False,
        )


def decode_text(doc: Mapping[str, Any]) -> None:
    _c("out").print(
        f"{doc['vendor_id']}:{doc['device_id']} header type {doc['header_type']:#04x}"
        f" class {doc.get('class', '?')}",
        markup=False,
    )
    caps: Sequence[Mapping[str, Any]] = doc.get("capabilities", [])
    ecaps: Sequence[Mapping[str, Any]] = doc.get("extended_capabilities", [])
    _c("out").print(
        "capabilities: " + (", ".join(f"[{c['offset']:02x}] {c['name']}" for c in caps) or "none"),
        markup=False,
    )
    _c("out").print(
        "extended: " + (", ".join(f"[{c['offset']:03x}] {c['name']}" for c in ecaps) or "none"),
        markup=False,
    )
    for key in ("pcie", "sriov", "ari", "acs"):
        sub = doc.get(key)
        if sub:
            body = ", ".join(f"{k}={v}" for k, v in sub.items() if k != "vf_bars")
            _c("out").print(f"{key}: {body}", markup=False)
    for e in doc.get("errors", []) or []:
        warn(str(e))


def _c(name: str) -> Console:
    c: Console = __getattr__(name)
    return c
