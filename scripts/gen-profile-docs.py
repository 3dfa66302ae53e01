#!/usr/bin/env python3
"""Regenerate profiles/schema.json (from vfctl.profile's schema) and the reference section of
docs/profiles.md (from schema.json). `--check`: exit 1 when either is out of date."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "profiles" / "schema.json"
DOC = ROOT / "docs" / "profiles.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (scripts/gen-profile-docs.py) -->"
END = "<!-- END GENERATED REFERENCE -->"


def schema_text() -> str:
    sys.path.insert(0, str(ROOT))
    from vfctl.profile import json_schema

    return json.dumps(json_schema(), indent=2) + "\n"


def _type(s: dict[str, Any]) -> str:
    if "oneOf" in s and "type" not in s:
        return " or ".join(_type(o) for o in s["oneOf"])
    t = s.get("type", "?")
    if "const" in s:
        return f"`{json.dumps(s['const'])}`"
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    extra = []
    if "minimum" in s or "maximum" in s:
        extra.append(f"{s.get('minimum', '')}..{s.get('maximum', '')}")
    if "pattern" in s:
        extra.append(f"`{s['pattern']}`")
    return t + (f" ({', '.join(extra)})" if extra else "")


def _objects(s: dict[str, Any], path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    if s.get("type") == "object":
        out.append((path, s))
        for k, v in s.get("properties", {}).items():
            _objects(v, f"{path}.{k}" if path else k, out)
    elif s.get("type") == "array":
        _objects(s["items"], f"{path}[]", out)
    elif "oneOf" in s:
        for o in s["oneOf"]:
            if o.get("type") == "object":
                tag = next(
                    (f"{k}={v['const']}" for k, v in o["properties"].items() if "const" in v), ""
                )
                _objects(o, f"{path} ({tag})" if tag else path, out)


def reference(schema: dict[str, Any]) -> str:
    objs: list[tuple[str, dict[str, Any]]] = []
    _objects(schema, "", objs)
    lines = [BEGIN, ""]
    for path, s in objs:
        lines.append(f"### `{path or '(top level)'}`")
        lines.append("")
        lines.append(s.get("description", ""))
        if "oneOf" in s and all(set(o) == {"required"} for o in s["oneOf"]):
            forms = " · ".join("{" + ", ".join(o["required"]) + "}" for o in s["oneOf"])
            lines.append("")
            lines.append(f"Exactly one of: {forms}.")
        lines.append("")
        lines.append("| key | type | required | description |")
        lines.append("| --- | --- | --- | --- |")
        req = set(s.get("required", []))
        for k, v in s.get("properties", {}).items():
            desc = v.get("description", "").replace("|", "\\|").replace("\n", " ")
            if v.get("type") in ("object", "array") or (
                "oneOf" in v and "type" not in v and any("properties" in o for o in v["oneOf"])
            ):
                desc += " (see below)"
            lines.append(f"| `{k}` | {_type(v)} | {'yes' if k in req else ''} | {desc} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def doc_text(schema: dict[str, Any], current: str) -> str:
    head, _, rest = current.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + reference(schema) + tail


def main() -> int:
    check = "--check" in sys.argv[1:]
    want_schema = schema_text()
    want_doc = doc_text(json.loads(want_schema), DOC.read_text(encoding="utf-8"))
    stale = [
        p
        for p, t in ((SCHEMA, want_schema), (DOC, want_doc))
        if not p.exists() or p.read_text(encoding="utf-8") != t
    ]
    if check:
        for p in stale:
            print(
                f"{p.relative_to(ROOT)} is out of date: run scripts/gen-profile-docs.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    SCHEMA.write_text(want_schema, encoding="utf-8")
    DOC.write_text(want_doc, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
