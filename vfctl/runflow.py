"""The mutating run: lock → refuse over a stale run → discover → plan → execute → verify → record.

A command hands :func:`run` a ``build(model) -> (actions, verify)``; ``verify(model)`` gets
the one model re-discovered after the actions ran, and the history record reuses it. So a
mutating command discovers exactly twice (plan and verify), ``--check`` once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vfctl.errors import RefusedError, VfctlError
from vfctl.model import HostModel

if TYPE_CHECKING:
    from vfctl.host.sysfs import Host
    from vfctl.plan import Action, Result
    from vfctl.session import Session

Verify = Callable[[HostModel], None]
Build = Callable[[HostModel], tuple[list["Action"], Verify | None]]


def refuse_stale(h: Host) -> None:
    """Refuse to plan over a change awaiting confirmation or over a killed run's journal.

    Call it holding the host lock: whoever holds it knows any journal is a killed run's.
    """
    from vfctl import confirm, plan

    confirm.refuse_if_pending(h)
    stale = plan.pending_journal(h)
    if stale is not None:
        raise RefusedError(
            f"an interrupted vfctl run left a journal ({plan.Journal(h).path}) with "
            f"{len(stale['actions'])} actions; run `vfctl recover` to roll it back"
        )


def run(
    s: Session,
    build: Build,
    *,
    check: bool,
    wait: float,
    with_devices: bool = False,
    confirm: float | None = None,
    record: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    interactive: bool = False,
) -> Result:
    """Plan and (unless ``check``) execute one command's actions; the Result to render.

    ``confirm``: arm an automatic revert unless `vfctl confirm` runs within that many seconds;
    ``record``: extra fields for the history record (profile, undone run).
    """
    from vfctl import confirm as confirm_mod
    from vfctl import history, hoststate, plan
    from vfctl.discover import refuse_unsound
    from vfctl.host.lock import host_lock
    from vfctl.inputs import seconds

    seconds(wait, "--wait")
    if confirm is not None and not check:
        confirm_mod.check_seconds(confirm)
    h = s.host()
    ctx = s.context(progress)
    ctx.interactive = interactive
    with host_lock(h, wait):
        refuse_stale(h)
        # under the lock: what the plan acts on, with the in-use facts the planners refuse on
        m = s.rediscover(with_devices=with_devices, inuse=True)
        actions, verify = build(m)
        refuse_unsound(m, actions)
        if check:
            return plan.execute(ctx, actions, check=True)
        after = _After(s)
        fields = {"argv": sys.argv[1:], **(record or {})}
        res = history.run_recorded(  # recorded in the history, success or failure
            h,
            m,
            lambda: after.execute(ctx, actions, verify, hoststate.of_model(m)),
            after.model,
            fields,
        )
        if confirm is not None and res.changed:
            res.extra["confirm"] = confirm_mod.arm(h, res, confirm, s.reverter_argv())
    return res


class _After:
    """The one discovery after the actions: verify checks it, the history records it.

    A verify model stays valid for the record only when nothing ran after it (no rollback);
    a VM manager that does not answer after the run costs the record its "after" keys (as
    before), not the run: verify then checks a model without the VM managers' view.
    """

    def __init__(self, s: Session) -> None:
        self.s = s
        self.seen: HostModel | None = None
        self.inventory_error: Exception | None = None

    def discover(self) -> HostModel:
        try:
            self.seen = self.s.rediscover()
        except Exception as e:  # the VM managers' inventory failed (before discovery ran)
            self.inventory_error = e
            self.seen = self.s.rediscover(with_backends=False)
        return self.seen

    def execute(
        self, ctx: Any, actions: list[Action], verify: Verify | None, before: Mapping[str, Any]
    ) -> Result:
        from vfctl import plan

        check = None if verify is None else (lambda: verify(self.discover()))
        try:
            return plan.execute(ctx, actions, verify=check, before=before)
        except BaseException:
            self.seen = None  # rolled back: the host is no longer what verify saw
            self.s.forget_model()
            raise

    def model(self) -> HostModel:
        if self.inventory_error is not None:
            raise self.inventory_error
        if self.seen is None:
            self.discover()
            if self.inventory_error is not None:
                raise self.inventory_error
        assert self.seen is not None
        return self.seen


# ---------------------------------------------------------------- a change awaiting confirmation


def revert_pending(s: Session, reason: str) -> Result | None:
    """Revert the pending change now, with the host lock held; its Result, or None."""
    from vfctl import confirm, history, hoststate, plan, undo

    h = s.host()
    p = confirm.load(h)
    if p is None:
        return None
    actions = undo.inverses(list(p.get("actions") or []))
    ctx = s.context()
    fields = {"argv": sys.argv[1:], "reverts": p.get("history_id"), "reason": reason}
    m = s.rediscover()
    before = hoststate.of_model(m)
    res = history.run_recorded(
        h, m, lambda: plan.execute(ctx, actions, before=before), s.rediscover, fields
    )
    confirm.clear(h)  # only now: a failed revert leaves the change pending, for recover/confirm
    return res


def confirm_now(h: Host) -> dict[str, Any]:
    """Keep the pending change: cancel its reverter and record the confirmation."""
    import contextlib
    import time

    from vfctl import confirm, history
    from vfctl.errors import NotFoundError

    p = confirm.load(h)
    if p is None:
        raise NotFoundError("no change awaits confirmation (confirmed already, or reverted)")
    confirm.clear(h)
    confirm.cancel(p)
    now = time.time()
    rec = {
        "id": history.new_id(now),
        "time": now,
        "user": history.who(),
        "via": "cli",
        "argv": history.redact_argv(sys.argv[1:]),
        "confirms": p.get("history_id"),
        "changed": False,
        "success": True,
        "error": None,
        "actions": [],
        "keys": [],
    }
    with contextlib.suppress(OSError, VfctlError):  # the confirmation holds either way
        history.append(h, rec)
    return {"confirmed": p.get("history_id")}


def keep(s: Session, wait: float) -> dict[str, Any]:
    """`vfctl confirm`: keep the change awaiting confirmation (under the host lock)."""
    from vfctl.host.lock import host_lock

    with host_lock(s.host(), wait):
        return confirm_now(s.host())


def expire(s: Session, token: str, wait: float) -> Result | None:
    """The reverter `--confirm` armed: at the deadline, revert the change if it still waits."""
    from vfctl import confirm
    from vfctl.host.lock import host_lock

    h = s.host()
    if not confirm.wait_for_deadline(h, token):
        return None
    with host_lock(h, max(wait, 300.0)):
        p = confirm.load(h)
        if p is None or p.get("token") != token:
            return None
        return revert_pending(s, "timeout")


def recover(s: Session, wait: float) -> Result:
    """Roll back what a killed run did, from its journal; then a change awaiting confirmation.

    The backends come from this invocation's settings, never from the journal
    (:mod:`vfctl.reconnect` says why).
    """
    from vfctl import plan, reconnect
    from vfctl.host.lock import host_lock

    h = s.host()
    with host_lock(h, wait):
        cfg = s.config()
        ctx = plan.Context(h, backend_factory=reconnect.factory(cfg))
        res = plan.recover(ctx, precheck=lambda data: reconnect.check(cfg, data))
        if res.error is None:  # the killed run first; then a change awaiting confirmation
            reverted = revert_pending(s, "recover")
            if reverted is not None:
                res.rolled_back[:0] = reverted.actions
                res.changed = res.changed or reverted.changed
    return res


def conclude(s: Session, token: str, outcome: str, wait: float) -> tuple[str, Result | None]:
    """After a terminal's countdown: keep (``confirmed``) or revert the change ``token`` names.

    ``("gone", None)`` when that change no longer waits (confirmed or reverted meanwhile).
    """
    from vfctl import confirm
    from vfctl.host.lock import host_lock

    h = s.host()
    with host_lock(h, wait):
        p = confirm.load(h)
        if p is None or p.get("token") != token:
            return "gone", None
        if outcome == "confirmed":
            confirm_now(h)
            return "confirmed", None
        return "reverted", revert_pending(s, outcome)
