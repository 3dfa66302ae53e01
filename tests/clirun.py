"""The result of one vfctl run, shared by the CLI tests of every area."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Counted:
    """Calls of one vfctl function during a block: ``with counting("vfctl.discover", "discover")``."""

    def __init__(self) -> None:
        self.calls = 0


@contextmanager
def counting(module: str, name: str) -> Iterator[Counted]:
    """Wrap ``module.name`` so every call (from any module that looks it up there) is counted."""
    import importlib

    mod = importlib.import_module(module)
    real = getattr(mod, name)
    seen = Counted()

    def wrapper(*a: Any, **kw: Any) -> Any:
        seen.calls += 1
        return real(*a, **kw)

    setattr(mod, name, wrapper)
    try:
        yield seen
    finally:
        setattr(mod, name, real)
