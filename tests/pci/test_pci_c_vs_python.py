"""The C extension and the Python oracle agree byte-for-byte, read-for-read, on anything."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcitools import CORPUS, corpus_bytes, put16, put32

from vfctl.pci import configspace as py

pytestmark = pytest.mark.usefixtures("c_ext")

CORPUS_BYTES = [corpus_bytes(n) for n in CORPUS]
SIZES = st.sampled_from([64, 256, 4096])


def c_parse(data: bytes) -> dict[str, Any]:
    from vfctl.pci import _configspace

    return _configspace.parse(data)  # type: ignore[no-any-return]


def check_invariants(doc: dict[str, Any]) -> None:
    std = [c["offset"] for c in doc["capabilities"]]
    ext = [c["offset"] for c in doc["extended_capabilities"]]
    assert len(std) == len(set(std)) <= 48 and len(ext) == len(set(ext)) <= 960
    assert all(0x40 <= o < 0x100 and o % 4 == 0 for o in std)
    assert all(0x100 <= o < 0x1000 and o % 4 == 0 for o in ext)
    assert all(isinstance(e, str) and "\n" not in e for e in doc["errors"])


def same(data: bytes) -> None:
    expected = py.parse(data)
    assert c_parse(data) == expected
    check_invariants(expected)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    b = bytearray(draw(st.sampled_from(CORPUS_BYTES)))
    # Bias edits towards the registers the walk and decoders look at.
    hot = st.one_of(
        st.integers(0, 0x3F),
        st.sampled_from([0x06, 0x0E, 0x14, 0x34]),
        st.integers(0x40, 0xFF),
        st.integers(0x100, 0x1FF),
        st.integers(0, 4095),
    )
    for off, val in draw(st.lists(st.tuples(hot, st.integers(0, 255)), max_size=8)):
        b[off] = val
    return bytes(b[: draw(SIZES)])


@st.composite
def chains(draw: st.DrawFn) -> bytes:
    """Hand-built capability chains: cyclic, backwards, into the header, off the end."""
    size = draw(SIZES)
    b = bytearray(draw(st.binary(min_size=4096, max_size=4096)) if draw(st.booleans()) else 4096)
    b[0x0E] = draw(st.sampled_from([0, 1, 2, 0x80, 0x7F]))
    put16(b, 0x06, 0x10)
    ptrs = draw(st.lists(st.integers(0, 0xFF), min_size=1, max_size=12))
    b[0x34] = b[0x14] = ptrs[0]
    ids = st.sampled_from([0x01, 0x05, 0x0D, 0x10, 0x11, 0xFF, 0x00])
    for here, nxt in zip(ptrs, [*ptrs[1:], draw(st.integers(0, 0xFF))], strict=True):
        here &= 0xFC
        if here >= 0x40:
            b[here] = draw(ids)
            b[here + 1] = nxt
            if here <= 0xFC - 2:
                put16(b, here + 2, draw(st.integers(0, 0xFFFF)))
    if 0xA0 not in [p & 0xFC for p in ptrs]:
        b[0x34] = 0xA0  # make sure some cases reach the extended walk
        b[0xA0], b[0xA1] = 0x10, ptrs[0]
        put16(b, 0xA2, draw(st.integers(0, 0xFF)))
    eoffs = draw(st.lists(st.integers(0, 0x3FF).map(lambda x: x * 4), min_size=1, max_size=12))
    eids = st.sampled_from([0x0001, 0x000D, 0x000E, 0x0010, 0x0003, 0xFFFF, 0x0000])
    pos = 0x100
    for nxt in eoffs:
        if pos < 0x100:
            break
        put32(b, pos, draw(eids) | draw(st.integers(0, 15)) << 16 | nxt << 20)
        pos = nxt
    return bytes(b[:size])


@pytest.mark.parametrize("data", CORPUS_BYTES, ids=CORPUS)
@pytest.mark.parametrize("size", [64, 256, 4096])
def test_corpus_identical(data: bytes, size: int) -> None:
    same(data[:size])


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=64, max_size=4096))
def test_random_bytes(data: bytes) -> None:
    same(data)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_real_dumps(data: bytes) -> None:
    same(data)


@settings(max_examples=400, deadline=None)
@given(chains())
def test_cyclic_and_broken_chains(data: bytes) -> None:
    same(data)


def test_short_input_is_value_error_in_both() -> None:
    for n in (0, 1, 63):
        with pytest.raises(ValueError):
            py.parse(b"\0" * n)
        with pytest.raises(ValueError):
            c_parse(b"\0" * n)


def _write(d: Path, blobs: list[bytes]) -> list[str]:
    paths = []
    for i, blob in enumerate(blobs):
        p = d / f"{i:05d}" / "config"
        p.parent.mkdir()
        p.write_bytes(blob)
        paths.append(str(p))
    return paths


def test_files_identical_including_reads(tmp_path: Path) -> None:
    rng = random.Random(1234)
    blobs: list[bytes] = []
    for base in CORPUS_BYTES:
        for size in (0, 3, 63, 64, 100, 256, 1000, 4096):
            blobs.append(base[:size])
        for _ in range(40):
            b = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                b[
                    rng.choice(
                        [rng.randrange(0x40), rng.randrange(0x40, 0x200), rng.randrange(4096)]
                    )
                ] = rng.randrange(256)
            blobs.append(bytes(b[: rng.choice([64, 256, 4096])]))
    paths = _write(tmp_path, blobs)
    paths += [str(tmp_path / "missing" / "config"), str(tmp_path)]  # ENOENT, a directory
    c_docs = py.parse_files_c(paths)
    assert c_docs == py.parse_files_python(paths)
    assert {d["error"] for d in c_docs[-2:]} == {
        f"cannot open: {os.strerror(2)}",
        "cannot open: not a regular file",  # sysfs config files are regular files
    }
    short = [d for d in c_docs if "error" in d and d["error"].startswith("short read")]
    assert len(short) == 3 * len(CORPUS)
    for d in c_docs:
        if "error" not in d:
            assert d["bytes_read"] <= 4096 and d["reads"] >= 1
            assert d["path"] in paths


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(), chains()), min_size=1, max_size=6))
def test_files_identical_under_hypothesis(blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as d:
        paths = _write(Path(d), blobs)
        assert py.parse_files_c(paths) == py.parse_files_python(paths)


def test_sriov_pf_reads_at_most_512_bytes(tmp_path: Path) -> None:
    paths = _write(tmp_path, CORPUS_BYTES)
    for doc in py.parse_files_c(paths):
        assert doc["sriov"] is not None
        assert doc["bytes_read"] <= 512


def test_parse_files_dispatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = _write(tmp_path, CORPUS_BYTES[:1])
    assert py.HAVE_C is (os.environ.get("VFCTL_NO_C") != "1")
    monkeypatch.setattr(py, "HAVE_C", False)
    monkeypatch.setattr(py, "_C_PARSE_FILES", None)
    assert py.parse_files(paths)[0]["vendor_id"] == "144d"
    with pytest.raises(RuntimeError):
        py.parse_files_c(paths)
