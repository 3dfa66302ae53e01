"""JSON rows from columns: the pure-Python twin of the C extension ``_jsonrows``.

Also ``objects``: rows from columns as objects (discovery's VFs), the same way in both twins.

``rows(pieces, columns, raw, objects)`` writes row ``i`` as ``pieces[0] + enc(columns[0][i]) +
pieces[1] + … + pieces[k]`` and joins the rows with ``", "``; a column given as an attribute
name is ``getattr(objects[i], name)``, read row by row, and one given as a tuple of names
an attribute path (``getattr(getattr(objects[i], a), b)``). A column whose bit is set in
``raw`` holds ASCII text fragments copied as they are; any other holds JSON scalars spelled as
``json.dumps`` spells them (None, bools, exact ints, exact strs, ASCII-escaped). Anything else
raises TypeError, mismatched lengths ValueError, in both twins alike, so the caller can fall
back to ``json.dumps`` (vfctl/jsontext.py). Why a C twin: formatting 16,384 VF rows in
Python took ~65 ms of `vfctl list --all --json` (benchmarks/README.md); the C one takes a
few. tests/core/test_jsonrows.py compares both with ``json.dumps``. ``VFCTL_NO_C=1`` or an
unbuilt extension selects this one.
"""

from __future__ import annotations

from itertools import repeat

from vfctl import cext
from vfctl.jsoncodec import dumps_str as _str

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any

_C_MOD = cext.optional("vfctl._jsonrows")
HAVE_C = _C_MOD is not None and cext.USE_C


def _scalar(col: int, row: int, v: object) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is int:
        return int.__repr__(v)
    if type(v) is str:
        return _str(v)
    raise TypeError(f"rows: column {col} row {row}: value {type(v).__name__} not encodable")


def _column(col: int, values: list[Any], raw: bool) -> list[str]:
    if raw:
        for row, v in enumerate(values):
            if type(v) is not str or not v.isascii():
                raise TypeError(
                    f"rows: column {col} row {row}: raw {type(v).__name__} not encodable"
                )
        return values  # checked: all ASCII str
    return [_scalar(col, row, v) for row, v in enumerate(values)]


def _path(obj: object, path: str | tuple[str, ...]) -> object:
    for name in (path,) if type(path) is str else path:
        obj = getattr(obj, name)
    return obj


def rows_python(
    pieces: tuple[str, ...], columns: tuple[Any, ...], raw: int, objects: Any = None
) -> str:
    """The oracle and the fallback: the same text, the same errors, as the C twin."""
    if type(pieces) is not tuple or type(columns) is not tuple:
        raise TypeError("rows: pieces and columns are tuples")
    if not isinstance(raw, int):
        raise TypeError("rows: raw is an int")
    if not 0 <= raw < 1 << 64:
        raise OverflowError("rows: raw is a 64-bit mask")
    if len(pieces) != len(columns) + 1:
        raise ValueError("rows: need one piece more than columns")
    if len(columns) > 64:
        raise ValueError("rows: at most 64 columns")
    for j, p in enumerate(pieces):
        if type(p) is not str or not p.isascii():
            raise TypeError(f"rows: piece {j} is not ASCII str")
    if objects is not None and type(objects) not in (list, tuple):
        raise TypeError("rows: objects is a list or a tuple")
    n = -1 if objects is None else len(objects)
    for j, c in enumerate(columns):
        if type(c) is tuple and (not c or any(type(q) is not str for q in c)):
            raise TypeError(f"rows: column {j} is not a path of names")
        if type(c) in (str, tuple):
            if objects is None:
                raise TypeError(f"rows: column {j} names an attribute: no objects")
            continue
        if type(c) is not list:
            raise TypeError(f"rows: column {j} is not a list")
        if n < 0:
            n = len(c)
        elif len(c) != n:
            raise ValueError("rows: columns differ in length")
    if not columns:  # n rows of the one piece (none without objects)
        return ", ".join([pieces[0]] * max(n, 0))
    values = [[_path(o, c) for o in objects] if type(c) in (str, tuple) else c for c in columns]
    cols = [_column(j, c, bool(raw >> j & 1)) for j, c in enumerate(values)]
    fmt = "%s".join(p.replace("%", "%%") for p in pieces)
    return ", ".join([fmt % row for row in zip(*cols, strict=True)])


def rows(pieces: tuple[str, ...], columns: tuple[Any, ...], raw: int, objects: Any = None) -> str:
    """The C twin when built (and not disabled), else the Python one; same text."""
    if HAVE_C:
        return _C_MOD.rows(pieces, columns, raw, objects)  # type: ignore[union-attr,no-any-return]
    return rows_python(pieces, columns, raw, objects)


def objects_python(cls: type, keys: tuple[str, ...], columns: tuple[Any, ...]) -> list[Any]:
    """One ``object.__new__(cls)`` per row with ``__dict__`` ``{keys[j]: columns[j][i]}``, set
    as ``object.__setattr__`` sets it (frozen records too); a column that is not a list holds
    the same value in every row. Errors as the C twin's (TypeError, ValueError, AttributeError).
    Discovery makes 16,384 VFs so: ~11 ms through ``VF.plain`` per row, ~6 ms in C."""
    if not isinstance(cls, type) or type(keys) is not tuple or type(columns) is not tuple:
        raise TypeError("objects: a class, a tuple of keys and a tuple of columns")
    if cls.__new__ is not object.__new__:  # type: ignore[comparison-overlap]  # a subclass's
        raise TypeError("objects: cls has a __new__ of its own")
    if len(columns) != len(keys):
        raise ValueError("objects: one column per key")
    if not all(type(k) is str for k in keys):
        raise TypeError("objects: a key is not a str")
    sizes = {len(c) for c in columns if type(c) is list}
    if len(sizes) > 1:
        raise ValueError("objects: columns differ in length")
    n = sizes.pop() if sizes else 0
    out: list[Any] = []
    for row in zip(*(c if type(c) is list else repeat(c, n) for c in columns), strict=True):
        o: Any = object.__new__(cls)
        object.__setattr__(o, "__dict__", dict(zip(keys, row, strict=True)))
        out.append(o)
    return out


def objects(cls: type, keys: tuple[str, ...], columns: tuple[Any, ...]) -> list[Any]:
    """The C twin when built (and not disabled), else the Python one; equal objects."""
    if HAVE_C:
        return _C_MOD.objects(cls, keys, columns)  # type: ignore[union-attr,no-any-return]
    return objects_python(cls, keys, columns)
