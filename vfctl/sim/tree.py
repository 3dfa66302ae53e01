"""Writing the host tree: idempotent files and links, removal, atomic config bytes, and the
fingerprints that let a render skip what has not changed. (The crash matrix kills a run
between any two of these calls: keep every tree change going through them.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vfctl.sim.common import State

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)

if TYPE_CHECKING:
    from typing import Any


def atomic_write(p: Path, data: bytes) -> None:
    """Config bytes are never re-derived: a kill must leave the old or the new file, whole."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def put(p: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    try:
        if p.read_bytes() == data:
            return
    except OSError:
        pass
    p.write_bytes(data)


def link(p: Path, target: Path) -> None:
    import shutil

    rel = os.path.relpath(target, p.parent)
    try:
        if os.readlink(p) == rel:
            return
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(p)
    os.symlink(rel, p)


def rm(p: Path) -> None:
    import shutil

    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def changed(st: State, key: str, payload: Any, witness: Path) -> str | None:
    """A new fingerprint when this part of the tree must be re-rendered, else None: skipping
    unchanged devices keeps a write on a host with 100+ VFs cheap."""
    import hashlib

    fp = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    if st.setdefault("_fp", {}).get(key) == fp and os.path.lexists(witness):
        return None
    return fp
