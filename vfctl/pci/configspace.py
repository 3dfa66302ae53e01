"""Decode PCI config spaces: the C extension ``_configspace`` when built, else its pure-Python
twin (vfctl/pci/walk.py, imported only then: a listing with the extension loads none of the
Python decoders, ~4% of a typical host's ``list --json``).

The document shape is DESIGN §3 ``vfctl decode --json`` (see docs/configspace.md).
"""

from __future__ import annotations

from vfctl import cext

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from vfctl.pci.caps import Doc

_C_PARSE_FILES: Callable[[list[str]], list[dict[str, Any]]] | None = getattr(
    cext.optional("vfctl.pci._configspace"), "parse_files", None
)
HAVE_C = _C_PARSE_FILES is not None and cext.USE_C


def parse(data: bytes) -> Doc:
    """Decode config bytes (64, 256 or 4096 of them; a shorter space sets ``truncated``)."""
    from vfctl.pci import walk

    return walk.parse(data)


def parse_files_python(paths: Sequence[str]) -> list[Doc]:
    """The fallback batch reader; also the oracle the C extension is tested against."""
    from vfctl.pci import walk

    return [walk.parse_file(p) for p in paths]


def parse_files_c(paths: Sequence[str]) -> list[Doc]:
    if _C_PARSE_FILES is None:
        raise RuntimeError("the vfctl.pci._configspace extension is not built")
    return _C_PARSE_FILES(list(paths))


def parse_files(paths: Sequence[str]) -> list[Doc]:
    """Parse many sysfs ``config`` files with the fewest bytes read (C when available)."""
    return parse_files_c(paths) if HAVE_C else parse_files_python(paths)
