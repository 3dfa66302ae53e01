"""Bounded YAML for profiles: size, nesting and aliases capped, YAML 1.2 core-schema scalars.

PyYAML follows YAML 1.1, where ``1:30`` is the sexagesimal integer 90, ``on`` is true and
``0777`` is octal; a VLAN id must not change meaning that way, so scalars are resolved by the
YAML 1.2 core schema (yaml.org/spec/1.2.2, 10.3.2 "Tag Resolution"). Aliases are refused: a
profile never needs them, and a few KB of nested aliases expand to billions of nodes for any
code that walks the tree. Everything is checked on the event stream (flat, no recursion)
before a node tree exists, so a hostile file costs at most its size in time and memory.
"""

from __future__ import annotations

import re
from typing import IO, Any

import yaml

MAX_BYTES = 1 << 20  # a profile for every VF of a large host is a few KB
MAX_DEPTH = 32  # the schema nests 5 levels (pfs[].vfs[].attach.vm)
MAX_INT_DIGITS = 20  # above every integer a profile holds (VF ids, rates, VM ids)

Loc = tuple[int, int]  # 1-based line, column

# YAML 1.2 core schema (10.3.2): the only implicit non-string scalars
_CORE: tuple[tuple[str, str, str], ...] = (
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN",
        "-+.0123456789",
    ),
)


class Resolver12(yaml.resolver.BaseResolver):
    """Implicit tags by the YAML 1.2 core schema instead of PyYAML's 1.1 rules."""

    yaml_implicit_resolvers = {}  # noqa: RUF012  (PyYAML's per-class table, filled below)


for _tag, _re, _first in _CORE:
    Resolver12.add_implicit_resolver(_tag, re.compile(f"^(?:{_re})$"), list(_first))
Resolver12.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])

if yaml.__with_libyaml__:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]

    class _Loader(CParser, Resolver12):
        """libyaml's parser and composer, with the 1.2 resolver."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Resolver12.__init__(self)

else:  # pragma: no cover - PyYAML without libyaml

    class _Loader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        yaml.composer.Composer,
        Resolver12,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            Resolver12.__init__(self)


class YamlRefused(Exception):
    """A located reason to refuse the text before composing it."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _loc(mark: Any) -> Loc:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _prescan(text: str) -> None:
    """Refuse aliases, anchors, deep nesting and oversized integers on the event stream."""
    p = _Loader(text)
    depth = 0
    try:
        while p.check_event():
            ev: Any = p.get_event()
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
                raise YamlRefused(
                    _loc(ev.start_mark), "YAML anchors and aliases are not allowed in profiles"
                )
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlRefused(_loc(ev.start_mark), f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(ev, yaml.ScalarEvent) and len(ev.value) > MAX_INT_DIGITS:
                digits = ev.value.lstrip("+-")
                if ev.implicit[0] and digits[:1].isdigit() and digits.isdigit():
                    raise YamlRefused(
                        _loc(ev.start_mark),
                        f"integer of {len(digits)} digits: too large for any profile value",
                    )
    finally:
        dispose = getattr(p, "dispose", None)
        if dispose is not None:
            dispose()


def compose(text: str) -> yaml.Node | None:
    """The node tree of one document; YamlRefused or yaml.YAMLError (both located) otherwise."""
    _prescan(text)
    loader = _Loader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose is not None:
            dispose()


def to_int(value: str) -> int:
    """A YAML 1.2 core-schema integer (``0o17``, ``0x1f``, ``-3``); the digits were capped."""
    sign = -1 if value.startswith("-") else 1
    v = value.lstrip("+-")
    if v.startswith("0o"):
        return sign * int(v[2:], 8)
    if v.startswith("0x"):
        return sign * int(v[2:], 16)
    return sign * int(v, 10)


def to_bool(value: str) -> bool:
    return value.lower() == "true"


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise YamlRefused((line, col), "not UTF-8 text") from None


def read_profile(path: str, stdin: IO[bytes] | None = None) -> str:
    """The profile's text: a regular file (or ``-``: stdin) of at most MAX_BYTES, never cut.

    Opened with O_NONBLOCK so a FIFO or a device cannot block the run; anything but a regular
    file is refused. YamlRefused for undecodable bytes, UsageError for everything else.
    """
    if path == "-":
        import sys

        src = stdin if stdin is not None else sys.stdin.buffer
        data = src.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            from vfctl.host.files import FileRefused

            raise FileRefused("<stdin>", f"profile larger than {MAX_BYTES >> 10} KiB: refused")
        return _text(data, "<stdin>")
    from vfctl.errors import NotFoundError
    from vfctl.host.files import read_regular

    data = read_regular(path, MAX_BYTES, "profile", missing=NotFoundError)
    return _text(data, path)


class Dumper12(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 *or* 1.2 would read as something else."""


for _tag, _re, _first in _CORE:
    Dumper12.add_implicit_resolver(_tag, re.compile(f"^(?:{_re})$"), list(_first))
