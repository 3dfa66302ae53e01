"""host.files.read_attr: the buffer sized by fstat never changes what is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vfctl.host.files import read_attr


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 70_000])
def test_a_regular_file_is_read_whole_or_to_the_limit(tmp_path: Path, size: int) -> None:
    f = tmp_path / "attr"
    data = os.urandom(size)
    f.write_bytes(data)
    assert read_attr(str(f), 1 << 20) == data
    assert read_attr(str(f), 100) == data[:100]
    assert read_attr(str(f)) == data[: 1 << 16]


def test_a_file_whose_size_fstat_does_not_tell_is_read_to_the_limit() -> None:
    """procfs reports size 0: the read goes on up to the limit."""
    got = read_attr("/proc/self/status", 1 << 16)
    assert got.startswith(b"Name:") and got.endswith(b"\n") and len(got) > 100


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for p in (tmp_path / "fifo", tmp_path):
        with pytest.raises(OSError):
            read_attr(str(p))
