"""What a test needs from the machine. In CI (or with VFCTL_<X>=required) a missing piece means
`make test` lacks an install step, so it fails; on a developer's machine it skips."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(var: str | None = None) -> bool:
    return os.environ.get("CI") == "true" or (var is not None and os.environ.get(var) == "required")


def missing(why: str, var: str | None = None) -> NoReturn:
    """Fail (CI, or VAR=required) or skip (elsewhere) because ``why``."""
    if required(var):
        pytest.fail(f"{why} (required here: `make test` should have installed it)")
    pytest.skip(why)
