"""vfctl.record makes classes that behave as ``dataclasses`` makes them (differential).

Each case is one class body decorated twice, by ``dataclasses.dataclass`` and by
``vfctl.record.dataclass`` with the same options; everything the project or its tests can
observe is compared: construction (values, defaults, factories, every TypeError and its
message), repr, equality, hashing, ordering, frozen-ness (the exception and its message),
``__match_args__``, ``__doc__``, ``dataclasses.fields/replace/asdict/is_dataclass``, pickling
and copying; then the lean path's own classes are checked to be records.
"""

from __future__ import annotations

import copy
import dataclasses
import operator
import pickle
from typing import Any

import pytest

from vfctl import record


def _both(options: dict[str, Any], make_body: Any) -> tuple[type, type]:
    ref = dataclasses.dataclass(**options)(make_body(dataclasses.field))
    rec = record._dataclass(**options)(make_body(record._field))
    return ref, rec


def _point(field: Any) -> type:
    class Point:
        x: int
        y: int
        label: str = "p"
        tags: tuple[str, ...] = field(default_factory=tuple)
        extra: list[int] = field(default_factory=list)

        def norm(self) -> int:
            return self.x * self.x + self.y * self.y

    return Point


def _single(field: Any) -> type:
    class Single:
        """A documented record."""

        only: str

    return Single


def _empty(field: Any) -> type:
    class Empty:
        pass

    return Empty


def _defaults_only(field: Any) -> type:
    class Opts:
        root: str = "/"
        verbose: int = 0
        uri: str | None = field(default=None)

    return Opts


FROZEN = {"frozen": True}
OPTIONS = [
    FROZEN,
    {"frozen": True, "order": True},
    {},
    {"eq": False},
    {"frozen": True, "eq": False},
]
BODIES = [_point, _single, _empty, _defaults_only]


def _outcome(fn: Any, *args: Any, **kw: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kw)
    except Exception as e:  # the exception itself is what is compared
        return type(e).__name__, str(e)


def _calls(cls: type) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    names = [f.name for f in dataclasses.fields(cls)]
    vals = [3, 4, "q", ("a",), [1]][: len(names)] or []
    return [
        ((), {}),
        (tuple(vals), {}),
        (tuple(vals[:1]), {}),
        (tuple(vals[:2]), {}),
        ((), dict(zip(names, vals, strict=False))),
        (tuple(vals[:1]), dict(zip(names[1:2], vals[1:2], strict=False))),
        ((*vals, 9), {}),
        ((*vals, 9, 10), {}),
        ((1,), {names[0]: 2} if names else {}),
        ((), {"nope": 1}),
        ((1,), {"nope": 1, **({names[0]: 2} if names else {})}),
    ]


def _describe(obj: Any) -> tuple[Any, ...]:
    return (type(obj).__qualname__, repr(obj), vars(obj), list(vars(obj)))


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("body", BODIES)
def test_construction_matches(options: dict[str, Any], body: Any) -> None:
    ref, rec = _both(options, body)
    for args, kw in _calls(ref):
        got = _outcome(lambda *a, **k: _describe(rec(*a, **k)), *args, **kw)
        want = _outcome(lambda *a, **k: _describe(ref(*a, **k)), *args, **kw)
        assert got == want, (args, kw)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("body", BODIES)
def test_methods_and_introspection_match(options: dict[str, Any], body: Any) -> None:
    ref, rec = _both(options, body)
    n = len(dataclasses.fields(ref))
    samples = [(3, 4, "q", ("a",), [1])[:n], (3, 5, "q", ("a",), [1])[:n], (2, 9, "a", (), [])[:n]]
    refs, recs = [ref(*s) for s in samples], [rec(*s) for s in samples]
    for attr in ("__match_args__", "__doc__"):
        assert getattr(rec, attr, None) == getattr(ref, attr, None), attr
    assert rec.__hash__ is None if ref.__hash__ is None else rec.__hash__ is not None
    for (a, b), (c, d) in zip(
        [(x, y) for x in refs for y in refs], [(x, y) for x in recs for y in recs], strict=True
    ):
        assert (a == b) == (c == d)
        assert (a != b) == (c != d)
        for op in ("__lt__", "__le__", "__gt__", "__ge__"):
            assert _outcome(getattr(a, op), b) == _outcome(getattr(c, op), d)
        assert _outcome(operator.lt, a, b) == _outcome(operator.lt, c, d)
    for a, c in zip(refs, recs, strict=True):
        if ref.__hash__ is object.__hash__:  # eq=False: identity, as object's
            assert rec.__hash__ is object.__hash__
        else:
            assert _outcome(hash, a) == _outcome(hash, c)
        assert (a == object()) is (c == object()) is False
        assert dataclasses.is_dataclass(c) and dataclasses.is_dataclass(rec)
        assert dataclasses.asdict(c) == dataclasses.asdict(a)
        assert _describe(copy.copy(c)) == _describe(c)  # __reduce_ex__, as pickle uses it
        assert _describe(copy.deepcopy(c)) == _describe(c)
        if n:
            name = dataclasses.fields(ref)[0].name
            assert _describe(dataclasses.replace(c, **{name: 7})) == _describe(
                dataclasses.replace(a, **{name: 7})
            )
            assert _describe(record._replace(c, **{name: 7})) == _describe(
                dataclasses.replace(a, **{name: 7})
            )
        assert _outcome(record._replace, c, nope=1) == _outcome(dataclasses.replace, a, nope=1)
    a, c = ref(*samples[0]), rec(*samples[0])  # assignments (they may succeed)
    for change in (lambda o: setattr(o, "x", 1), lambda o: setattr(o, "other", 1),
                   lambda o: delattr(o, "x")):  # fmt: skip
        assert _outcome(change, a) == _outcome(change, c)
        assert (vars(a), _outcome(repr, a)) == (vars(c), _outcome(repr, c))
    fields = [(f.name, f.type, f.default, f.default_factory) for f in dataclasses.fields(rec)]
    assert fields == [
        (f.name, f.type, f.default, f.default_factory) for f in dataclasses.fields(ref)
    ]
    assert rec.__dataclass_params__.frozen == ref.__dataclass_params__.frozen  # type: ignore[attr-defined]
    for f in dataclasses.fields(ref):  # class-level defaults (none for a factory's field)
        assert _outcome(getattr, rec, f.name) == _outcome(getattr, ref, f.name)
    assert set(vars(rec)) - set(vars(ref)) - {"__slotnames__"} == {"__record_params__"}


def test_frozen_assignment_raises_the_dataclasses_exception() -> None:
    _, rec = _both(FROZEN, _point)
    p = rec(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
        p.x = 5
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'y'"):
        del p.y
    assert p.x == 1 and p.norm() == 5


def test_bad_bodies_are_refused_as_dataclasses_refuses_them() -> None:
    def late_required(field: Any) -> type:
        class Bad:
            a: int = 1
            b: int

        return Bad

    for make in (dataclasses.dataclass, record._dataclass):
        with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
            make(
                late_required(dataclasses.field if make is dataclasses.dataclass else record._field)
            )
    with pytest.raises(ValueError, match="cannot specify both default and default_factory"):
        record._field(default=1, default_factory=list)


def test_the_lean_paths_classes_are_records() -> None:
    """The classes `vfctl list --json` loads are built by vfctl.record (no dataclasses import)."""
    from vfctl import model, session, vfattrs
    from vfctl.host import holders
    from vfctl.pci import address

    classes = [
        *(
            c
            for c in vars(model).values()
            if isinstance(c, type)
            and c.__module__ == model.__name__
            and c not in (model.VfRows, model._LazyVfs)  # columns and PF.vfs's descriptor
        ),
        session.Options,
        address.PciAddress,
        holders.VmProcess,
        holders.Reservation,
        vfattrs.Attr,
        vfattrs.Group,
        vfattrs.Desired,
    ]
    assert len(classes) == 18
    assert all(c in record._FIELDS for c in classes)
    vf = model.VF.plain(1, "0000:01:10.1", None, None, None, 7, "8086", "10ed", model.VFSettings())
    pf = model.PF(
        *(["x"] * 8), 0, None, None, 1, None, None, None, None, None, 7, None, False, (vf,)
    )
    again = pickle.loads(pickle.dumps(pf))
    assert again == pf and again.vfs[0] == vf and repr(again) == repr(pf)
