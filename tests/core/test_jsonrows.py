"""JSON rows from columns: the C twin and the Python twin write json.dumps's bytes, fail alike."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from needs import missing

from vfctl import jsonrows

Rows = Callable[[tuple[str, ...], tuple[list[object], ...], int], str]


@pytest.fixture
def c_rows() -> Rows:
    if jsonrows._C_MOD is None:
        missing("the vfctl._jsonrows extension is not built", "VFCTL_C_EXT")
    return jsonrows._C_MOD.rows  # type: ignore[no-any-return]


ODD = [
    "",
    "plain",
    'quo"te',
    "back\\slash",
    "new\nline",
    "tab\tcr\rff\fbs\b",
    "\x00\x01\x1f\x7f",  # controls and DEL: json writes \u00XX
    "caf\u00e9",
    "\u2028\u2029",
    "\U0001f600",  # beyond the BMP: a surrogate pair
    "\udcff",  # a lone surrogate (os.fsdecode's escape of a bad byte)
    "[bold]markup[/]",
    "%s %d %%",  # format directives are text
]
SCALARS: list[object] = [None, True, False, 0, -1, 7, 10, -10, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, -(2**70), *ODD]


def _expected(pieces: tuple[str, ...], columns: tuple[list[object], ...], raw: int) -> str:
    rows = []
    for i in range(len(columns[0]) if columns else 0):
        parts = [pieces[0]]
        for j, c in enumerate(columns):
            parts += [c[i] if raw >> j & 1 else json.dumps(c[i]), pieces[j + 1]]  # type: ignore[list-item]
        rows.append("".join(parts))
    return ", ".join(rows)


def test_every_odd_scalar_is_spelled_as_json_dumps(c_rows: Rows) -> None:
    pieces = ('{"a": ', ', "b": ', ", ", "}")
    cols: tuple[list[object], ...] = (SCALARS, SCALARS[::-1], ['"raw": 1'] * len(SCALARS))
    want = ", ".join(
        json.dumps({"a": a, "b": b, "raw": 1}) for a, b in zip(SCALARS, SCALARS[::-1], strict=True)
    )
    assert _expected(pieces, cols, 0b100) == want
    assert c_rows(pieces, cols, 0b100) == want
    assert jsonrows.rows_python(pieces, cols, 0b100) == want


def test_empty_and_single(c_rows: Rows) -> None:
    for args in [(("x",), (), 0), (("[", "]"), ([],), 0), (("[", "]"), (["a"],), 0)]:
        assert c_rows(*args) == jsonrows.rows_python(*args) == _expected(*args)


@pytest.mark.parametrize(
    ("pieces", "columns", "raw", "error"),
    [
        (("a", "b"), ([1.5],), 0, TypeError),  # json.dumps spells floats: not rows' business
        (("a", "b"), ([type("S", (str,), {})("x")],), 0, TypeError),  # a subclass
        (("a", "b"), ([type("I", (int,), {})(3)],), 0, TypeError),
        (("a", "b"), ([[1]],), 0, TypeError),
        (("a", "b"), ([None],), 1, TypeError),  # raw text must be text
        (("a", "b"), (["\u00e9"],), 1, TypeError),  # and ASCII
        (("a", "\u00e9"), (["x"],), 0, TypeError),  # pieces too
        (("a",), ([1],), 0, ValueError),  # one piece more than columns
        (("a", "b", "c"), ([1], [1, 2]), 0, ValueError),  # equal lengths
        (("a", "b"), ((1,),), 0, TypeError),  # lists only
        (("a", "b"), ([1],), -1, OverflowError),
        (("a", "b"), ([1],), 1 << 64, OverflowError),
    ],
)
def test_both_twins_refuse_alike(
    c_rows: Rows, pieces: tuple[str, ...], columns: tuple[list[object], ...], raw: int,
    error: type[Exception],
) -> None:  # fmt: skip
    with pytest.raises(error):
        c_rows(pieces, columns, raw)
    with pytest.raises(error):
        jsonrows.rows_python(pieces, columns, raw)


def test_sixty_five_columns_are_refused(c_rows: Rows) -> None:
    pieces, cols = ("",) * 66, ([1],) * 65
    for rows in (c_rows, jsonrows.rows_python):
        with pytest.raises(ValueError):
            rows(pieces, cols, 0)  # type: ignore[arg-type]


scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), st.text()
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=4).flatmap(
        lambda k: st.tuples(
            st.lists(st.text(alphabet=st.characters(max_codepoint=127)), min_size=k + 1,
                     max_size=k + 1).map(tuple),
            st.integers(min_value=0, max_value=6).flatmap(
                lambda n: st.lists(st.lists(scalar, min_size=n, max_size=n), min_size=k,
                                   max_size=k).map(tuple)),
        )
    )
)  # fmt: skip
def test_twins_agree_with_json_dumps_under_hypothesis(
    args: tuple[tuple[str, ...], tuple[list[object], ...]],
) -> None:
    pieces, columns = args
    want = _expected(pieces, columns, 0)
    assert jsonrows.rows_python(pieces, columns, 0) == want
    if jsonrows._C_MOD is not None:
        assert jsonrows._C_MOD.rows(pieces, columns, 0) == want


def test_the_selector_follows_vfctl_no_c(monkeypatch: pytest.MonkeyPatch, c_rows: Rows) -> None:
    calls: list[str] = []
    monkeypatch.setattr(jsonrows, "rows_python", lambda *a: calls.append("py") or "")
    monkeypatch.setattr(jsonrows, "HAVE_C", False)
    jsonrows.rows(("a", "b"), ([1],), 0)
    assert calls == ["py"]
    monkeypatch.setattr(jsonrows, "HAVE_C", True)
    assert jsonrows.rows(("a", "b"), ([1],), 0) == "a1b"
    assert calls == ["py"]


class _Obj:
    def __init__(self, a: object, inner: object = None) -> None:
        self.a, self.inner = a, inner


def test_attribute_and_path_columns_read_the_objects(c_rows: Rows) -> None:
    objs = [_Obj(v, _Obj(w)) for v, w in zip(SCALARS, SCALARS[::-1], strict=True)]
    pieces = ('{"a": ', ', "b": ', ', "c": ', "}")
    cols = ("a", ("inner", "a"), [n for n in range(len(objs))])
    want = ", ".join(json.dumps({"a": o.a, "b": o.inner.a, "c": n}) for n, o in enumerate(objs))  # type: ignore[attr-defined]
    for objects in (objs, tuple(objs)):
        assert c_rows(pieces, cols, 0, objects) == want  # type: ignore[call-arg]
        assert jsonrows.rows_python(pieces, cols, 0, objects) == want
    # no columns: one row of the piece per object, as both twins agree
    assert (
        c_rows(("x",), (), 0, objs[:3])
        == jsonrows.rows_python(("x",), (), 0, objs[:3])
        == "x, x, x"
    )  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("columns", "objects", "error"),
    [
        (("a",), None, TypeError),  # an attribute needs objects
        (("a",), {1: 2}, TypeError),  # objects: a list or a tuple
        (((),), [_Obj(1)], TypeError),  # an empty path
        ((("inner", 3),), [_Obj(1)], TypeError),  # names only
        (("nope",), [_Obj(1)], AttributeError),
        ((("inner", "a"),), [_Obj(1)], AttributeError),  # None has no a
        (("a", [1, 2]), [_Obj(1)], ValueError),  # a list as long as the objects
        (("a",), [_Obj(1.5)], TypeError),  # a value rows() leaves to json.dumps
    ],
)
def test_attribute_columns_refused_alike(
    c_rows: Rows, columns: tuple[object, ...], objects: object, error: type[Exception]
) -> None:
    pieces = ("",) * (len(columns) + 1)
    with pytest.raises(error):
        c_rows(pieces, columns, 0, objects)  # type: ignore[arg-type,call-arg]
    with pytest.raises(error):
        jsonrows.rows_python(pieces, columns, 0, objects)


# objects(): rows from columns as objects (discovery's VFs), the C twin and the Python twin


@pytest.fixture(params=["c", "python"])
def make_objects(request: pytest.FixtureRequest) -> Callable[..., list[object]]:
    if request.param == "python":
        return jsonrows.objects_python
    if jsonrows._C_MOD is None:
        missing("the vfctl._jsonrows extension is not built", "VFCTL_C_EXT")
    return jsonrows._C_MOD.objects  # type: ignore[no-any-return]


def test_objects_are_vf_plain_per_row(make_objects: Callable[..., list[object]]) -> None:
    from vfctl.model import VF, VFSettings

    s = VFSettings(vlan=3)
    cols = ([0, 1, 2], ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"], ["vfio-pci", None, "ixgbevf"],
            [None, "vfio-pci", None], [None, None, "eth9"], [17, None, 19], "8086", ["10ed", "10ca", "10ed"],
            s)  # fmt: skip
    got = make_objects(VF, VF.PLAIN, cols)
    rows = [[c[i] if type(c) is list else c for c in cols] for i in range(3)]
    want = [VF.plain(*r) for r in rows]
    assert got == want == [VF(*r) for r in rows]
    assert [(hash(v), repr(v), list(vars(v).items())) for v in got] == [
        (hash(v), repr(v), list(vars(v).items())) for v in want
    ]
    assert all(type(v) is VF and v.settings is s for v in got)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].index = 5  # type: ignore[attr-defined]
    assert make_objects(VF, VF.PLAIN, ([],) * 9) == []
    assert make_objects(VF, VF.PLAIN, ("x",) * 9) == []  # no list column: no rows


class _Own:
    def __new__(cls) -> _Own:
        return super().__new__(cls)


class _Slots:
    __slots__ = ("a",)


class _Plain:
    pass


@pytest.mark.parametrize(
    ("cls", "keys", "cols", "err"),
    [
        (_Plain, ("a", "b"), ([1, 2], [3]), ValueError),  # columns differ in length
        (_Plain, ("a",), ([1], [2]), ValueError),  # a column without a key
        (_Plain, (1,), ([1],), TypeError),  # keys are names
        (_Own, ("a",), ([1],), TypeError),  # object.__new__ would refuse it too
        (int, (), (), TypeError),
        (_Slots, ("a",), ([1],), AttributeError),  # no __dict__ to set
        ("notatype", (), (), TypeError),
        (_Plain, ["a"], ([1],), TypeError),
    ],
)
def test_objects_fail_alike(cls: object, keys: object, cols: object, err: type[Exception]) -> None:
    with pytest.raises(err):
        jsonrows.objects_python(cls, keys, cols)  # type: ignore[arg-type]
    if jsonrows._C_MOD is not None:
        with pytest.raises(err):
            jsonrows._C_MOD.objects(cls, keys, cols)
