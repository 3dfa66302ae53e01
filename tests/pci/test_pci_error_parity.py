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
from pcitools import put16, put32

from vfctl.pci import configspace as py

pytestmark = pytest.mark.usefixtures("c_ext")

SRIOV_ID, PCIE_ID = 0x0010, 0x10


def repeated_caps(std: int, ext: int) -> bytes:
    """A config space whose standard chain holds ``std`` PCI Express capabilities and whose
    extended chain holds ``ext`` SR-IOV capabilities that each overrun their space (one error
    each; each is decoded again because none succeeded); both chains end in a loop."""
    assert 0 <= std <= 14 and 1 <= ext <= 14
    b = bytearray(4096)
    put16(b, 0x00, 0x8086)
    put16(b, 0x02, 0x10FB)
    put16(b, 0x06, 0x0010)  # status: capability list
    ptrs = [0x100 - 4 * i for i in range(std, 0, -1)] + [0x40]
    b[0x34] = ptrs[0]
    for pos, nxt in zip(ptrs, [*ptrs[1:], ptrs[0]], strict=True):
        b[pos], b[pos + 1] = PCIE_ID, nxt
        if pos + 3 < 0x100:
            put16(b, pos + 2, 0x0002)  # PCIe capability version 2, endpoint
    first = 0x1000 - 4 * ext
    put32(b, 0x100, 0x0001 | 1 << 16 | first << 20)  # AER, then the SR-IOV copies
    for pos in range(first, 0x1000, 4):
        nxt = pos + 4 if pos + 4 < 0x1000 else first
        put32(b, pos, SRIOV_ID | 1 << 16 | nxt << 20)
    return bytes(b)


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
    assert len(errors) <= py.MAX_ERRORS + 1
    if len(errors) <= py.MAX_ERRORS:
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
