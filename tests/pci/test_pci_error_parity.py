"""Issue 11 item 14: the C parser and its Python twin return identical documents, always.

The C extension stores 16 error lines; the Python twin used to keep all of them (a crafted
config space with repeated SR-IOV capabilities gave 16 vs 24). Both now list 16 and count the
rest in one last line. Also item 6: a FIFO in place of a ``config`` file never blocks either.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pcitools import repeated_caps

from vfctl.pci import configspace as py
from vfctl.pci import walk

pytestmark = pytest.mark.usefixtures("c_ext")


def c_parse(data: bytes) -> dict[str, Any]:
    from vfctl.pci import _configspace

    return _configspace.parse(data)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("std", "ext"), [(0, 1), (0, 14), (1, 13), (1, 14), (4, 14)])
def test_many_errors_identical(std: int, ext: int) -> None:
    data = repeated_caps(std, ext)
    doc = py.parse(data)
    assert c_parse(data) == doc
    errors = doc["errors"]
    overruns = [e for e in errors if "overruns" in e]
    assert len(errors) <= walk.MAX_ERRORS + 1
    if len(errors) <= walk.MAX_ERRORS:
        assert len(overruns) >= ext
    else:
        assert re.fullmatch(r"[1-9][0-9]* more errors not listed", errors[-1])
    if std and ext == 14:  # 14 + one standard overrun + two loops: 17, one not listed
        assert errors[-1] == "1 more errors not listed"


def test_many_errors_identical_from_files(tmp_path: Path) -> None:
    f = tmp_path / "config"
    f.write_bytes(repeated_caps(14, 14))
    assert py.parse_files_c([str(f)]) == py.parse_files_python([str(f)])


@pytest.mark.parametrize("impl", ["parse_files_python", "parse_files_c"])
def test_fifo_config_refused_without_blocking(tmp_path: Path, impl: str) -> None:
    """In a child process: a regression blocks in open(2) and must fail, not hang the suite."""
    fifo = tmp_path / "config"
    os.mkfifo(fifo)
    code = f"import json; from vfctl.pci import configspace as c; print(json.dumps(c.{impl}([{str(fifo)!r}])))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(p.stdout) == [{"path": str(fifo), "error": "cannot open: not a regular file"}]
