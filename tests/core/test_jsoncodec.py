"""vfctl.jsoncodec says what ``json`` says: the same text, the same objects, the same errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfctl import jsoncodec

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def test_the_accelerator_serves_here() -> None:
    """On the CPython the project supports, the lean path really is taken (not json)."""
    assert jsoncodec._ACC is not None


@given(documents)
def test_dumps_is_json_dumps(doc: object) -> None:
    assert jsoncodec.dumps(doc) == json.dumps(doc)


@given(st.text())
def test_dumps_str_is_json_dumps(s: str) -> None:
    assert jsoncodec.dumps_str(s) == json.dumps(s)


@given(documents, st.sampled_from(["", " ", "\n\t ", "\r\n"]))
def test_loads_is_json_loads(doc: object, ws: str) -> None:
    text = ws + json.dumps(doc) + ws
    got, want = jsoncodec.loads(text), json.loads(text)
    assert _same(got, want)


def _same(a: object, b: object) -> bool:
    """Equality with NaN equal to itself, and types compared too (1 is not 1.0 or True)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    return a == b


@pytest.mark.parametrize("text", [
    "", " ", "[1,", '{"a" 1}', "[1] x", "\ufeff[1]", "nul", "[1]\x00", '"\x01"', "01", "[NaN, 1e400]",
    '{"a": Infinity}', "-Infinity", "[" * 100000,
])  # fmt: skip
def test_loads_fails_or_succeeds_as_json_does(text: str) -> None:
    try:
        want: object = json.loads(text)
    except (ValueError, RecursionError) as e:
        with pytest.raises(type(e)) as got:
            jsoncodec.loads(text)
        assert str(got.value) == str(e)
    else:
        assert _same(jsoncodec.loads(text), want)


@pytest.mark.parametrize("value", [{1j}, object(), {"a": b"x"}, {(1, 2): 3}])
def test_dumps_refuses_as_json_does(value: object) -> None:
    with pytest.raises(TypeError) as want:
        json.dumps(value)
    with pytest.raises(TypeError) as got:
        jsoncodec.dumps(value)
    assert str(got.value) == str(want.value)


def test_a_cycle_is_refused_as_json_does() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsoncodec.dumps(loop)
    assert jsoncodec.dumps({1: [1.5, -0.0, float("inf")], None: True}) == json.dumps(
        {1: [1.5, -0.0, float("inf")], None: True}
    )
