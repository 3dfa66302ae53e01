"""Plan/execute engine: ordered actions as data, each with its inverse; journaled, rolled back.

An action is pure data (an op name from the registry plus JSON parameters), so a journal left
by a killed run can be read back and undone by ``vfctl recover`` in a new process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vfctl.errors import BackendError, HostError, RefusedError, VfctlError
from vfctl.host.sysfs import Host
from vfctl.journal import JOURNAL as JOURNAL  # re-exported: callers know the engine's names
from vfctl.journal import Journal as Journal
from vfctl.journal import JournalInvalid as JournalInvalid

if TYPE_CHECKING:
    from vfctl.backends.base import Backend

    BackendFactory = Callable[[str, Mapping[str, Any]], Backend]


@dataclass(frozen=True)
class Action:
    op: str  # registry key, e.g. "sysfs.write"
    target: str  # what it acts on, for humans: "0000:01:00.0 sriov_numvfs"
    detail: str  # what changes: "0 -> 4"
    params: Mapping[str, Any] = field(default_factory=dict)
    undo: Action | None = None  # None: nothing to undo (or cannot be undone)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "target": self.target, "detail": self.detail}

    def to_record(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "target": self.target,
            "detail": self.detail,
            "params": dict(self.params),
            "undo": self.undo.to_record() if self.undo else None,
        }

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Action:
        undo = r.get("undo")
        return cls(
            r["op"],
            r["target"],
            r["detail"],
            dict(r.get("params") or {}),
            cls.from_record(undo) if undo else None,
        )


def _conn_key(name: str, params: Mapping[str, Any]) -> tuple[str, str]:
    return (name, json.dumps(dict(params), sort_keys=True))


class Context:
    """What ops act on: the host, and backends: the ones that planned, else made on first use.

    ``backends``: instances the caller already has (the session's): an op whose connection
    params equal one's ``params()`` runs on that very instance, so what it records (Proxmox
    pending changes, warnings) is what the command reports; the factory makes the others
    (``vfctl recover`` in a new process).
    """

    def __init__(
        self,
        host: Host,
        backend_factory: BackendFactory | None = None,
        progress: Callable[[str], None] | None = None,
        backends: Iterable[Backend] = (),
    ) -> None:
        self.host = host
        self._backend_factory = backend_factory
        self._backends: dict[tuple[str, str], Backend] = {}
        for b in backends:
            self.adopt(b)
        self.progress = progress or (lambda _msg: None)
        self.interactive = False  # a person watches a terminal: progress bars are welcome
        self.warnings: list[str] = []

    def adopt(self, b: Backend) -> None:
        """Execute ops for ``b``'s connection on ``b`` itself (if none was made for it yet)."""
        self._backends.setdefault(_conn_key(b.name, b.params()), b)

    def backend(self, name: str, params: Mapping[str, Any]) -> Backend:
        key = _conn_key(name, params)
        if key not in self._backends:
            if self._backend_factory is None:
                raise BackendError(f"backend {name} is not configured")
            self._backends[key] = self._backend_factory(name, params)
        return self._backends[key]


OpFunc = Callable[[Context, Mapping[str, Any]], None]
OPS: dict[str, OpFunc] = {}


def op(name: str) -> Callable[[OpFunc], OpFunc]:
    """Register an executable op under a stable name (journals refer to it)."""

    def deco(fn: OpFunc) -> OpFunc:
        OPS[name] = fn
        return fn

    return deco


@dataclass
class Result:
    changed: bool
    actions: list[Action]
    rolled_back: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: VfctlError | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "changed": self.changed,
            "actions": [a.to_json() for a in self.actions],
            "rolled_back": [a.to_json() for a in self.rolled_back],
            "warnings": list(self.warnings),
            "error": None
            if self.error is None
            else {"kind": self.error.kind, "message": self.error.message},
        }
        doc.update(self.extra)
        return doc


# modules that register ops, by op prefix: imported on demand so a journal written by one
# command can be replayed by `vfctl recover` in a fresh process
OP_MODULES = {
    "sysfs": "vfctl.ops_host",
    "sriov": "vfctl.ops_host",
    "pci": "vfctl.ops_host",
    "netlink": "vfctl.ops_vf",
    "libvirt": "vfctl.backends.libvirt_ops",
    "proxmox": "vfctl.backends.pve_ops",
    "libvirt_pool": "vfctl.backends.libvirt_pool",
    "pve_pool": "vfctl.backends.pve_pool",
}


def _run(ctx: Context, a: Action) -> None:
    fn = OPS.get(a.op)
    if fn is None and a.op.split(".")[0] in OP_MODULES:
        import importlib

        importlib.import_module(OP_MODULES[a.op.split(".")[0]])
        fn = OPS.get(a.op)
    if fn is None:
        raise HostError(f"unknown action {a.op!r} (journal from another vfctl version?)")
    fn(ctx, a.params)


def _wrap(exc: BaseException, a: Action) -> VfctlError:
    if isinstance(exc, VfctlError):
        return exc
    if isinstance(exc, OSError):
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        name = f"{_errname(exc.errno)}: " if exc.errno else ""
        return HostError(f"{a.target}: {a.detail} failed: {name}{reason}")
    return HostError(f"{a.target}: {a.detail} failed: {exc}")


def _errname(num: int | None) -> str:
    import errno as _e

    return _e.errorcode.get(num or 0, str(num))


def rollback(ctx: Context, done: Iterable[Action]) -> tuple[list[Action], list[str]]:
    """Undo actions in reverse; returns what was undone and what could not be."""
    undone: list[Action] = []
    failures: list[str] = []
    for a in reversed(list(done)):
        if a.undo is None:
            continue
        try:
            _run(ctx, a.undo)
            undone.append(a)
        except Exception as exc:  # keep undoing the rest
            failures.append(
                f"{a.target}: undo of {a.detail!r} failed: {_wrap(exc, a.undo).message}"
            )
    return undone, failures


def _snapshot_diffs(ctx: Context, before: Mapping[str, Any] | None) -> list[str]:
    """Differences between the host now and the snapshot taken before the run."""
    if before is None:
        return []
    from vfctl import hoststate

    try:
        diffs = hoststate.compare(before, hoststate.capture(ctx.host))
    except (OSError, VfctlError) as e:
        return [f"the host could not be read back: {getattr(e, 'message', None) or e}"]
    return [f"the host differs from before the run: {'; '.join(diffs)}"] if diffs else []


def execute(
    ctx: Context,
    actions: list[Action],
    verify: Callable[[], None] | None = None,
    check: bool = False,
    before: Mapping[str, Any] | None = None,
) -> Result:
    """Run actions in order, journaled; on failure roll back in reverse and re-raise as Result.

    ``before``: the host snapshot rollback must give back, when the caller already has it
    (the run flow takes it from its plan model, discovered under the same lock).
    """
    if check or not actions:
        return Result(changed=bool(actions), actions=actions, warnings=list(ctx.warnings))
    from vfctl import hoststate

    journal = Journal(ctx.host)
    if journal.load() is not None:  # every caller holds the lock: it is a killed run's
        raise RefusedError(
            f"an interrupted vfctl run left a journal ({journal.path}); "
            "run `vfctl recover` to roll it back first"
        )
    if before is None:  # what rollback and `vfctl recover` must give back
        before = hoststate.capture(ctx.host)
    record: dict[str, Any] = {
        "version": 2,
        "pid": os.getpid(),
        "started": time.time(),
        "root": os.path.abspath(ctx.host.root),
        "before": before,
        "actions": [a.to_record() for a in actions],
        "done": 0,
    }
    done: list[Action] = []
    journal.save(record)
    try:
        for i, a in enumerate(actions):
            record["done"] = i  # about to do action i; actions [0, i) are done
            record["current"] = i
            journal.save(record)
            ctx.progress(f"{a.target}: {a.detail}")
            _run(ctx, a)
            done.append(a)
        record["done"] = len(actions)
        record.pop("current", None)
        journal.save(record)
        if verify is not None:
            verify()
    except BaseException as exc:
        err = _wrap(exc, actions[len(done)] if len(done) < len(actions) else actions[-1])
        # the failed action may have half-happened: undo it too, best effort (its undo failing
        # usually means it never took effect); failures undoing completed actions are what count
        undone: list[Action] = []
        if len(done) < len(actions):
            half, _ = rollback(ctx, [actions[len(done)]])
            undone += half
        more, failures = rollback(ctx, done)
        undone += more
        if not failures:
            failures = _snapshot_diffs(ctx, before)
        if not failures:
            journal.clear()  # else keep it: `vfctl recover` retries what could not be undone
        undone_names = ", ".join(f"{a.target} ({a.detail})" for a in undone) or "nothing"
        msg = f"{err.message}; rolled back: {undone_names}"
        if failures:
            msg += (
                "; ROLLBACK INCOMPLETE: " + "; ".join(failures) + "; the journal is kept: "
                "fix the cause and run `vfctl recover`"
            )
        new = err.with_message(msg)
        if failures and not isinstance(err, HostError | BackendError):
            new = HostError(msg, hint=err.hint)
        if isinstance(exc, KeyboardInterrupt):
            new = HostError(f"interrupted; rolled back: {undone_names}")
        res = Result(
            changed=False,
            actions=actions,
            rolled_back=undone,
            warnings=list(ctx.warnings),
            error=new,
        )
        raise ExecutionFailed(res) from exc
    journal.clear()
    return Result(changed=True, actions=actions, warnings=list(ctx.warnings))


class ExecutionFailed(VfctlError):
    """Carries the Result of a rolled-back run so --json can still print the envelope."""

    def __init__(self, result: Result) -> None:
        assert result.error is not None
        super().__init__(result.error.message, hint=result.error.hint)
        self.result = result
        self.exit_code = result.error.exit_code
        self.kind = result.error.kind


def pending_journal(host: Host) -> dict[str, Any] | None:
    """The journal a killed run left, or None; call it holding the host lock.

    Whoever holds the lock knows any journal is stale: the run that wrote it held the lock
    and is gone (its pid may even belong to another process by now).
    """
    return Journal(host).load()


def recover(ctx: Context, precheck: Callable[[Mapping[str, Any]], None] | None = None) -> Result:
    """Roll back what a killed run did, from its journal, and check the host is as before.

    ``precheck`` sees the journal before anything is undone (recover's connection checks).
    """
    journal = Journal(ctx.host)
    data = journal.load()
    if data is None:
        return Result(changed=False, actions=[])
    if precheck is not None:
        precheck(data)
    actions = [Action.from_record(r) for r in data["actions"]]
    n = int(data["done"])
    # the action at index `done` may have started: undo it as well (undo ops are idempotent)
    started = actions[: min(n + 1, len(actions))] if "current" in data else actions[:n]
    undone, failures = rollback(ctx, started)
    if not failures:
        failures = _snapshot_diffs(ctx, data.get("before"))
    if not failures:
        journal.clear()  # a failed undo keeps the journal, so recover can retry
    res = Result(
        changed=bool(undone),
        actions=[a.undo for a in reversed(undone) if a.undo],
        rolled_back=undone,
    )
    if failures:
        res.error = HostError(
            "recover incomplete: " + "; ".join(failures) + f"; the journal {journal.path} is "
            "kept: fix the cause and run `vfctl recover` again"
        )
    return res
