"""Undo a recorded run: its inverses as one plan, refused when the host moved on since.

Pure: the caller supplies the record and the host's current facts (``history.facts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vfctl.errors import HostError, RefusedError, UsageError
from vfctl.plan import Action


def inverses(actions: list[Mapping[str, Any]]) -> list[Action]:
    """The recorded actions' undos in reverse order; each keeps the original as its own undo,
    so the undo run rolls back on failure and can itself be undone."""
    out = []
    for r in reversed(actions):
        a = Action.from_record(r)
        if a.undo is None:
            continue
        forward = Action(a.op, a.target, a.detail, a.params)
        out.append(Action(a.undo.op, a.undo.target, a.undo.detail, a.undo.params, forward))
    return out


def drift(keys: list[Mapping[str, Any]], now: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Touched keys whose current value is no longer the run's "after" value."""
    out = []
    for k in keys:
        have = now.get(k["name"])
        if have != k["after"]:
            out.append(
                {"pf": k["pf"], "vf": k["vf"], "key": k["key"], "want": k["after"], "have": have}
            )
    return out


def _fmt(d: Mapping[str, Any]) -> str:
    vf = f" vf{d['vf']}" if d["vf"] is not None else ""
    return f"{d['pf']}{vf} {d['key']}: run left {d['want']!r}, now {d['have']!r}"


def plan(
    rec: Mapping[str, Any], now: Mapping[str, Any], force: bool
) -> tuple[list[Action], list[dict[str, Any]]]:
    """(actions, drifted keys) undoing ``rec``; RefusedError (exit 4) on drift without force."""
    if not rec.get("changed"):
        return [], []  # rolled back, or nothing to do: the host is as it was
    if rec.get("reverted_by"):
        raise UsageError(f"run {rec['id']} was already reverted by {rec['reverted_by']}")
    keys = rec.get("keys")
    if keys is None:
        if not force:
            raise RefusedError(
                f"run {rec['id']}: the host was not re-read after it, so drift cannot be "
                "checked (--force to undo anyway)",
                override="--force",
            )
        keys = []
    drifted = drift(keys, now)
    if drifted and not force:
        raise RefusedError(
            f"run {rec['id']}: the host changed since: "
            + "; ".join(_fmt(d) for d in drifted[:8])
            + (f"; and {len(drifted) - 8} more" if len(drifted) > 8 else "")
            + " (--force to undo anyway)",
            override="--force",
        )
    return inverses(list(rec.get("actions") or [])), drifted


def verifier(
    keys: list[Mapping[str, Any]], read_now: Callable[[], Mapping[str, Any]]
) -> Callable[[], None]:
    """After the undo: every touched key is back to its "before" value."""

    recreated = {k["pf"] for k in keys if k["key"] == "num_vfs"}

    def verify() -> None:
        now = read_now()
        bad = [
            f"{k['name']} is {now.get(k['name'])!r}, was {k['before']!r}"
            for k in keys
            if now.get(k["name"]) != k["before"] and not _volatile(k, recreated)
        ]
        if bad:
            raise HostError("undo verify failed: " + "; ".join(bad[:8]))

    return verify


def _volatile(k: Mapping[str, Any], recreated: set[str]) -> bool:
    """A re-created VF's MAC is the driver's (often random) choice: it cannot be put back."""
    return k["key"] == "mac" and k["vf"] is not None and k["pf"] in recreated
