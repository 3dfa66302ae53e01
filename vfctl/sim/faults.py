"""Fault injection: ``ROOT/.vfctl-sim/faults.json`` rules that make a write fail or misbehave.

The file (optional) is a JSON list of rules, each
``{"path": GLOB, "value": V?, "errno": "EIO", "after": N?, "times": K?, "mode": M?, ...}``.
GLOB is matched (fnmatch, case-sensitive) against the root-relative path as written and as
resolved through symlinks (or the netlink path ``netlink/<pf>/vf<N>/<group>``). ``value``
(optional) must equal the written value without its trailing newline. The first ``after``
matching writes pass (default 0); the rule then fires ``times`` times (default 1; ``null`` =
always). Counters persist in state.json, keyed by the rule's position and text. Modes:

- ``error`` (default): the write fails with ``errno`` (EBUSY, EIO, ENOMEM, ENODEV, ...) at the
  point the kernel would do the work (after input validation), and changes nothing, as the
  kernel rolls back a failed sriov_enable.
- ``partial`` (sriov_numvfs): the driver enables only ``create`` VFs (default N-1); the write
  succeeds, as the kernel only warns "N VFs requested; only M enabled".
- ``no_vf`` (sriov_numvfs): VF number ``vf`` (default the last) never appears as a PCI device:
  no directory, no ``virtfnN`` link, although numvfs reads N.
- ``late_bind`` (sriov_numvfs, drivers_probe, bind, new_id): the write succeeds but the
  resulting driver binds happen on the next simulator call (any write, modprobe, vf_info,
  set_vf, link_info, or ``settle``) — the next "probe".
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

from vfctl.sim.common import State, oserr, simdir

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def _faults(root: Path) -> list[dict[str, Any]]:
    p = simdir(root) / "faults.json"
    if not p.exists():
        return []
    data = json.loads(p.read_text())
    if not isinstance(data, list):
        raise oserr(errno.EINVAL, f"{p}: faults must be a JSON list")
    return [f for f in data if isinstance(f, dict)]


def fault_for(root: Path, st: State, paths: list[str], value: str) -> dict[str, Any] | None:
    """The fault rule that fires for this write, counting matches as the format says."""
    import fnmatch

    hits: dict[str, int] = st.setdefault("fault_hits", {})
    fired: dict[str, int] = st.setdefault("fault_fired", {})
    chosen = None
    for i, rule in enumerate(_faults(root)):
        pat = str(rule.get("path", ""))
        if not any(fnmatch.fnmatchcase(p, pat) for p in paths):
            continue
        if "value" in rule and str(rule["value"]) != value.rstrip("\n"):
            continue
        key = f"{i}:{json.dumps(rule, sort_keys=True)}"  # a rewritten rule starts afresh
        hits[key] = hits.get(key, 0) + 1
        times = rule.get("times", 1)
        due = chosen is None and hits[key] > int(rule.get("after", 0))
        if due and (times is None or fired.get(key, 0) < int(times)):
            fired[key] = fired.get(key, 0) + 1
            chosen = rule
    return chosen


def fail_if(fault: dict[str, Any] | None, what: str) -> None:
    if fault is not None and fault.get("mode", "error") == "error":
        name = str(fault.get("errno", "EIO"))
        code = getattr(errno, name, None)
        if not isinstance(code, int):
            raise oserr(errno.EINVAL, f"faults.json: unknown errno {name!r}")
        raise oserr(code, f"{what} (injected fault)")


def fault_mode(fault: dict[str, Any] | None) -> str | None:
    return None if fault is None else str(fault.get("mode", "error"))
