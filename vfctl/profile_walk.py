"""The schema walker: YAML node tree + schema -> plain data, node locations and problems."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from vfctl import profile_yaml
from vfctl.profile_doc import Path_, Problem, fmt_path
from vfctl.profile_schema import T


class Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.locs: dict[Path_, tuple[int, int]] = {}

    def err(self, node: yaml.Node, path: Path_, msg: str) -> None:
        m = node.start_mark
        self.problems.append(Problem(self.file, m.line + 1, m.column + 1, fmt_path(path), msg))

    def walk(self, t: T, node: yaml.Node, path: Path_) -> Any:
        self.locs[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if t.kind == "object":
            return self._object(t, node, path)
        if t.kind == "array":
            if not isinstance(node, yaml.SequenceNode):
                self.err(node, path, f"expected a list, got {_what(node)}")
                return None
            assert t.items is not None
            return [self.walk(t.items, n, (*path, i)) for i, n in enumerate(node.value)]
        if t.kind == "union":
            return self._union(t, node, path)
        if t.kind == "any-of":
            fits = [o for o in t.options if _kind_ok(o, node)]
            for o in fits:
                trial = Walker(self.file)
                v = trial.walk(o, node, path)
                if not trial.problems or o is fits[-1]:
                    self.problems += trial.problems
                    self.locs.update(trial.locs)
                    return v
            kinds = " or ".join(_kind_name(o) for o in t.options)
            extra = f" ({t.hint})" if t.hint else ""
            self.err(node, path, f"expected {kinds}, got {_what(node)}{extra}")
            return None
        return self._scalar(t, node, path)

    def _object(self, t: T, node: yaml.Node, path: Path_) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, path, f"expected a mapping, got {_what(node)}")
            return None
        out: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        known = [k for k, _ in t.fields]
        for kn, vn in node.value:
            key = kn.value if isinstance(kn, yaml.ScalarNode) else None
            if not isinstance(key, str) or kn.tag != "tag:yaml.org,2002:str":
                self.err(kn, path, f"invalid key {_what(kn)}: keys are names")
                continue
            if key in seen:
                m = seen[key].start_mark
                self.err(kn, (*path, key), f"duplicate key {key!r} (first at line {m.line + 1})")
                continue
            seen[key] = kn
            ft = t.field(key)
            if ft is None:
                close = _close(key, known)
                self.err(
                    kn,
                    (*path, key),
                    f"unknown key {key!r}"
                    + (
                        f" (did you mean {close!r}?)" if close else f"; allowed: {', '.join(known)}"
                    ),
                )
                continue
            out[key] = self.walk(ft, vn, (*path, key))
        for r in t.required:
            if r not in out and r not in seen:
                self.err(node, path, f"missing required key {r!r}")
        if t.groups:
            given = [g for g in t.groups if any(k in seen for k in g)]
            forms = " or ".join("{" + ", ".join(g) + "}" for g in t.groups)
            if len(given) != 1:
                self.err(node, path, f"give exactly one of {forms}")
            else:
                missing = [k for k in given[0] if k not in seen]
                if missing:
                    self.err(node, path, f"missing key {missing[0]!r} (with {given[0][0]!r})")
        for k, needs in t.depends:
            if k in seen and not all(n in seen for n in needs):
                self.err(seen[k], (*path, k), f"{k!r} needs {' and '.join(map(repr, needs))}")
        return out

    def _union(self, t: T, node: yaml.Node, path: Path_) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, path, f"expected a mapping, got {_what(node)}")
            return None
        values = [o.field(t.tag) for o in t.options]
        names = [str(v.const) for v in values if v is not None]
        tag = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == t.tag), None
        )
        if tag is None:
            self.err(node, path, f"missing required key {t.tag!r} ({' or '.join(names)})")
            return None
        for o in t.options:
            ft = o.field(t.tag)
            if ft is not None and isinstance(tag, yaml.ScalarNode) and tag.value == ft.const:
                return self._object(o, node, path)
        self.err(tag, (*path, t.tag), f"invalid {t.tag} {_show(tag)}: {' or '.join(names)}")
        return None

    def _scalar(self, t: T, node: yaml.Node, path: Path_) -> Any:
        if not _kind_ok(t, node):
            extra = f" ({t.hint})" if t.hint else ""
            self.err(node, path, f"expected {_kind_name(t)}, got {_what(node)}{extra}")
            return None
        assert isinstance(node, yaml.ScalarNode)
        v: Any = node.value
        if t.kind == "integer":
            if not _INT.fullmatch(v):  # an explicit !!int tag on something else
                self.err(node, path, f"invalid integer {_show(node)}")
                return None
            v = profile_yaml.to_int(v)
        elif t.kind == "boolean":
            if not _BOOL.fullmatch(v):
                self.err(node, path, f"invalid boolean {_show(node)}: true or false")
                return None
            v = profile_yaml.to_bool(v)
        if t.const is not None and v != t.const:
            self.err(node, path, f"must be {t.const!r}, got {_show(node)}")
        if t.enum and v not in t.enum:
            self.err(node, path, f"invalid value {_show(node)}: {', '.join(t.enum)}")
        if t.pattern and not re.fullmatch(t.pattern, str(v)):
            self.err(
                node, path, f"invalid value {_show(node)}" + (f" ({t.hint})" if t.hint else "")
            )
        if t.minimum is not None and v < t.minimum:
            self.err(node, path, f"{v} is below the minimum {t.minimum}")
        if t.maximum is not None and v > t.maximum:
            self.err(node, path, f"{v} is above the maximum {t.maximum}")
        return v


_INT = re.compile(r"[-+]?[0-9]{1,20}|0o[0-7]{1,20}|0x[0-9a-fA-F]{1,16}")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_TAGS = {
    "string": "tag:yaml.org,2002:str",
    "integer": "tag:yaml.org,2002:int",
    "boolean": "tag:yaml.org,2002:bool",
}


def _kind_ok(t: T, node: yaml.Node) -> bool:
    if t.kind in _TAGS:
        return isinstance(node, yaml.ScalarNode) and node.tag == _TAGS[t.kind]
    if t.kind in ("object", "union"):
        return isinstance(node, yaml.MappingNode)
    if t.kind == "array":
        return isinstance(node, yaml.SequenceNode)
    return any(_kind_ok(o, node) for o in t.options)


def _kind_name(t: T) -> str:
    if t.enum and t.kind == "string" and len(t.enum) == 1:
        return repr(t.enum[0])
    if t.label:
        return t.label
    return {
        "string": "a string",
        "integer": "an integer",
        "boolean": "true or false",
        "object": "a mapping",
        "union": "a mapping",
        "array": "a list",
    }.get(t.kind, t.kind)


def _what(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    name = {
        "tag:yaml.org,2002:str": "string",
        "tag:yaml.org,2002:int": "integer",
        "tag:yaml.org,2002:bool": "boolean",
        "tag:yaml.org,2002:float": "number",
        "tag:yaml.org,2002:null": "null",
    }.get(node.tag, node.tag)
    return f"{name} {_show(node)}" if name != "null" else "nothing (null)"


def _show(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else _what(node)


def _close(key: str, known: Sequence[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return m[0] if m else None
