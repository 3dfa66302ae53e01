"""``dataclass``, ``field`` and ``replace`` for the lean path's records, without ``dataclasses``.

Why: importing ``dataclasses`` costs ~9 ms (it imports ``inspect``) and each class it decorates
~0.7 ms (every generated method is compiled with ``exec``): ~20 ms of a ~65 ms budget for
``vfctl list --json`` on a typical host. Here the same methods are shared closures over each
class's field names: ``__init__`` (same signature, defaults, factories, errors), ``__repr__``,
``__eq__`` and ``__hash__`` on the tuple of fields, ``order``, ``frozen`` (assignment raises
``dataclasses.FrozenInstanceError``) and ``__match_args__``. What only introspection needs
(``__dataclass_fields__``, ``__dataclass_params__`` and the generated ``__doc__``) comes from a
real dataclass built on first access, so ``dataclasses.replace``/``fields``/``asdict`` work
unchanged. mypy sees the ``dataclasses`` names themselves (the API is theirs);
tests/core/test_record.py compares both implementations. Supported: ``frozen``, ``order``,
``eq``, ``field(default=…)``, ``field(default_factory=…)``; no inheritance between records.
"""

from __future__ import annotations

import operator
import reprlib

TYPE_CHECKING = False  # typing is not imported at run time (mypy treats this name as True)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_MISSING: Any = object()
_FIELDS: dict[type, tuple[str, ...]] = {}  # every record class -> its field names


class _Field:
    """What ``field()`` leaves in a class body until the decorator reads it."""

    __slots__ = ("default", "factory")

    def __init__(self, default: Any, factory: Any) -> None:
        self.default, self.factory = default, factory


def _field(*, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory)


def _frozen_error(text: str) -> Exception:
    import dataclasses  # only when someone assigns to a frozen record

    return dataclasses.FrozenInstanceError(text)


def _names(names: list[str]) -> str:
    """CPython's listing of missing arguments: 'a', 'a' and 'b', 'a', 'b', and 'c'."""
    quoted = [f"'{n}'" for n in names]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


class _Lazy:
    """A class attribute only introspection reads, taken from a real dataclass on first use."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: object, owner: type) -> Any:
        import dataclasses

        params = owner.__dict__["__record_params__"]
        ns: dict[str, Any] = {"__module__": owner.__module__, "__qualname__": owner.__qualname__}
        ns["__annotations__"] = dict(owner.__dict__.get("__annotations__", {}))  # noqa: RUF063
        for name, (default, factory) in params["defaults"].items():
            if factory is _MISSING:
                ns[name] = dataclasses.field(default=default)
            else:
                ns[name] = dataclasses.field(default_factory=factory)
        twin: type = dataclasses.dataclass(**params["flags"])(type(owner.__name__, (), ns))
        for attr in ("__dataclass_fields__", "__dataclass_params__", "__doc__"):
            if attr in owner.__dict__ and isinstance(owner.__dict__[attr], _Lazy):
                setattr(owner, attr, twin.__dict__[attr])
        return twin.__dict__[self.attr]


def _methods(cls: type, names: tuple[str, ...], defaults: dict[str, Any], factories: dict[str, Any],
             frozen: bool) -> dict[str, Callable[..., Any]]:  # fmt: skip
    qual, n, known = cls.__qualname__, len(names), frozenset(names)
    required = [k for k in names if k not in defaults and k not in factories]
    optional = n - len(required)  # CPython's wording for too many positional arguments
    takes = (
        f"from {len(required) + 1} to {n + 1} positional arguments"
        if optional
        else (f"{n + 1} positional argument{'s' if n else ''}")
    )
    if n == 0:
        key: Callable[[Any], tuple[Any, ...]] = lambda self: ()  # noqa: E731
    elif n == 1:
        get = operator.attrgetter(names[0])
        key = lambda self: (get(self),)  # noqa: E731
    else:
        key = operator.attrgetter(*names)

    def __init__(self: Any, *args: Any, **kw: Any) -> None:
        if len(args) == n and not kw:
            object.__setattr__(self, "__dict__", dict(zip(names, args, strict=False)))
            return
        if not args and len(kw) == n and known.issuperset(kw):  # every field by name
            object.__setattr__(self, "__dict__", {k: kw[k] for k in names})  # replace(), PFs
            return
        given = dict(zip(names, args, strict=False))
        for k, v in kw.items():
            if k not in known:
                raise TypeError(f"{qual}.__init__() got an unexpected keyword argument '{k}'")
            if k in given:
                raise TypeError(f"{qual}.__init__() got multiple values for argument '{k}'")
            given[k] = v
        if len(args) > n:
            raise TypeError(f"{qual}.__init__() takes {takes} but {len(args) + 1} were given")
        missing = [k for k in required if k not in given]
        if missing:
            s = "s" if len(missing) > 1 else ""
            raise TypeError(
                f"{qual}.__init__() missing {len(missing)} required positional argument{s}: "
                + _names(missing)
            )
        d = {}
        for k in names:
            if k in given:
                d[k] = given[k]
            elif k in factories:
                d[k] = factories[k]()
            else:
                d[k] = defaults[k]
        object.__setattr__(self, "__dict__", d)

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join([f"{k}={getattr(self, k)!r}" for k in names])
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in known:
            raise _frozen_error(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in known:
            raise _frozen_error(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    out: dict[str, Callable[..., Any]] = {
        "__init__": __init__,
        "__repr__": __repr__,
        "__eq__": __eq__,
        "__hash__": __hash__,
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
    }
    for op in ("lt", "le", "gt", "ge"):
        out[f"__{op}__"] = _compare(getattr(operator, op), key)
    return out


def _compare(op: Callable[[Any, Any], Any], key: Callable[[Any], Any]) -> Callable[..., Any]:
    def compare(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return op(key(self), key(other))
        return NotImplemented

    return compare


def _set(cls: type, name: str, fn: Callable[..., Any]) -> None:
    fn.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, fn)


def _process(cls: type, frozen: bool, order: bool, eq: bool) -> type:
    if any(b is not object and "__record_params__" in b.__dict__ for b in cls.__mro__[1:]):
        raise TypeError(f"{cls.__qualname__}: records do not inherit from records")
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 (no inspect import)
    defaults: dict[str, Any] = {}
    factories: dict[str, Any] = {}
    for name in names:
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            if value.factory is not _MISSING:
                factories[name] = value.factory
                delattr(cls, name)
            elif value.default is not _MISSING:
                defaults[name] = value.default
                setattr(cls, name, value.default)
            else:
                delattr(cls, name)
        elif value is not _MISSING:
            defaults[name] = value
        elif defaults or factories:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    methods = _methods(cls, names, defaults, factories, frozen)
    own = cls.__dict__
    for name in ("__init__", "__repr__", "__eq__") if eq else ("__init__", "__repr__"):
        if name not in own:  # a class's own method stays, as dataclasses keeps it
            _set(cls, name, methods[name])
    for name in ("__lt__", "__le__", "__gt__", "__ge__") if order else ():
        if name in own:
            raise TypeError(f"{cls.__qualname__} defines {name}: not with order=True")
        _set(cls, name, methods[name])
    for name in ("__setattr__", "__delattr__") if frozen else ():
        if name in own:
            raise TypeError(f"{cls.__qualname__} defines {name}: not with frozen=True")
        _set(cls, name, methods[name])
    if eq and own.get("__hash__") is None:  # no explicit __hash__ (None: __eq__ in the body)
        if frozen:
            _set(cls, "__hash__", methods["__hash__"])
        else:
            cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared: unhashable
    if "__match_args__" not in cls.__dict__:
        cls.__match_args__ = names  # type: ignore[attr-defined,misc]
    everything = {**{k: (v, _MISSING) for k, v in defaults.items()},
                  **{k: (_MISSING, f) for k, f in factories.items()}}  # fmt: skip
    flags = {"frozen": frozen, "order": order, "eq": eq}
    cls.__record_params__ = {"defaults": everything, "flags": flags}  # type: ignore[attr-defined]
    cls.__dataclass_fields__ = _Lazy("__dataclass_fields__")  # type: ignore[attr-defined]
    cls.__dataclass_params__ = _Lazy("__dataclass_params__")  # type: ignore[attr-defined]
    if cls.__dict__.get("__doc__") is None:
        cls.__doc__ = _Lazy("__doc__")  # type: ignore[assignment]  # the signature, as dataclasses
    _FIELDS[cls] = names
    return cls


def _dataclass(
    cls: type | None = None, /, *, frozen: bool = False, order: bool = False, eq: bool = True
) -> Any:
    if cls is None:
        return lambda c: _process(c, frozen, order, eq)
    return _process(cls, frozen, order, eq)


def _replace(obj: Any, /, **changes: Any) -> Any:
    names = _FIELDS.get(type(obj))
    if names is None:
        import dataclasses

        return dataclasses.replace(obj, **changes)
    # a field not made yet (model.PF's VFs: __record_lazy__ names what makes it) stays so
    lazy: dict[str, str] = getattr(obj.__class__, "__record_lazy__", {})
    d = obj.__dict__
    kept = {m: d[m] for k, m in lazy.items() if k not in changes and k not in d and m in d}
    if kept and all(map(names.__contains__, changes)):  # __init__ would only fill a dict
        skip = {k for k, m in lazy.items() if m in kept}
        fresh = {
            k: changes[k] if k in changes else d[k] if k in d else getattr(obj, k)
            for k in names
            if k not in skip
        }
        fresh.update(kept)  # the unmade field's maker last, as the path below leaves it
        new = object.__new__(obj.__class__)
        object.__setattr__(new, "__dict__", fresh)
        return new
    for k in names:
        if k not in changes and (k in d or lazy.get(k) not in kept):
            changes[k] = getattr(obj, k)
    new = obj.__class__(**changes)
    for k, m in lazy.items():
        if m in kept:
            del new.__dict__[k]
            new.__dict__[m] = kept[m]
    return new


if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import replace as replace
else:
    dataclass, field, replace = _dataclass, _field, _replace
