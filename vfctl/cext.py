"""The optional C extensions: each has a pure-Python twin that serves when it is not built.

``VFCTL_NO_C=1`` picks the twins even when built (differential tests, benchmarks)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    from types import ModuleType

USE_C = os.environ.get("VFCTL_NO_C") != "1"


def optional(name: str) -> ModuleType | None:
    """The built extension ``name``, or None (not built: the caller's twin serves)."""
    try:  # pragma: no cover - depends on the build
        __import__(name)  # importlib's import_module, without importing importlib
        return sys.modules[name]
    except ImportError:  # pragma: no cover - depends on the build
        return None
