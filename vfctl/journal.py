"""The journal of a run in progress: written before each action, read back by `vfctl recover`.

It lives in vfctl's private state directory (vfctl.host.statedir) and is read back by another
process, possibly after a crash or tampering: so it is loaded only when it has exactly the
shape vfctl writes, and anything else is kept and refused (exit 4), never guessed at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from vfctl.errors import RefusedError
from vfctl.host.sysfs import Host

JOURNAL = "run/vfctl/journal.json"  # under the host root; see vfctl.host.statedir


class JournalInvalid(RefusedError):
    """A journal that cannot be read back: kept, and every mutating command refuses (exit 4)."""


_RECORD_KEYS = {"op": str, "target": str, "detail": str}


def _record_ok(r: Any, depth: int = 0) -> bool:
    if not isinstance(r, dict) or depth > 2:
        return False
    if any(not isinstance(r.get(k), t) for k, t in _RECORD_KEYS.items()):
        return False
    if not isinstance(r.get("params", {}), dict):
        return False
    return r.get("undo") is None or _record_ok(r["undo"], depth + 1)


def _shape_problem(data: Any) -> str | None:
    """Why ``data`` is not a journal this vfctl wrote, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    actions = data.get("actions")
    if not isinstance(actions, list) or not all(_record_ok(r) for r in actions):
        return "'actions' is not a list of actions"
    done = data.get("done")
    if not isinstance(done, int) or isinstance(done, bool) or not 0 <= done <= len(actions):
        return "'done' is not an action count"
    if "before" in data:
        from vfctl import hoststate

        if not hoststate.valid(data["before"]):
            return "'before' is not a host snapshot"
    return None


class Journal:
    """The record of a run in progress, ``/run/vfctl/journal.json`` (mode 0600, in a 0700
    directory); present only while a run is live, or after it was killed."""

    NAME = "journal.json"

    def __init__(self, host: Host) -> None:
        from vfctl.host import statedir

        self.host = host
        self.path = statedir.location(host, self.NAME)

    def load(self) -> dict[str, Any] | None:
        """The journal, None when there is none; JournalInvalid when it cannot be trusted."""
        from vfctl.host import statedir

        dirfd = statedir.open_dir(self.host, create=False)
        if dirfd is None:
            return None
        try:
            raw = statedir.read(dirfd, self.NAME, self.path)
        finally:
            os.close(dirfd)
        if raw is None:
            return None
        try:
            data = json.loads(raw.decode("utf-8"))
            why = _shape_problem(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            why = f"not JSON ({type(e).__name__})"
        if why is not None:
            raise JournalInvalid(
                f"the journal {self.path} of an interrupted run cannot be read ({why}); it is "
                "kept: compare the host with what it lists (vfctl list -a), undo that by hand, "
                "then delete the file"
            )
        assert isinstance(data, dict)
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        from vfctl.host import statedir

        dirfd = statedir.open_dir(self.host)
        assert dirfd is not None
        try:
            statedir.write(dirfd, self.NAME, json.dumps(data).encode())
        finally:
            os.close(dirfd)

    def clear(self) -> None:
        from vfctl.host import statedir

        dirfd = statedir.open_dir(self.host, create=False)
        if dirfd is not None:
            try:
                statedir.remove(dirfd, self.NAME)
            finally:
                os.close(dirfd)
