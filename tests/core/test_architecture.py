"""The module map in docs/architecture.md stays true, and the layering it describes holds.

Static checks over the source tree (AST only, nothing imported): every module is on the map and
every module on the map exists; no module imports another that (directly or through others)
imports it back; the pure middle never imports typer; modules stay small.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "vfctl"
DOC = ROOT / "docs" / "architecture.md"

# modules a command's fast path and the planners import: typer must stay out of them
TYPER_FREE = ("vfctl/session.py", "vfctl/discover.py", "vfctl/model.py", "vfctl/render.py")
MAX_LINES = 450  # "no module over ~400 lines": the generated and C files are exempt


def _modules() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for p in PKG.rglob("*")
        if p.suffix in (".py", ".c") and p.name != "__init__.py" and "__pycache__" not in p.parts
    )


def _dotted(rel: str) -> str:
    return rel.removesuffix(".py").replace("/", ".")


def _imports(rel: str) -> set[str]:
    """Every vfctl module ``rel`` imports at run time, inside functions too (not for typing)."""
    tree = ast.parse((ROOT / rel).read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for b in node.body for n in ast.walk(b))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vfctl"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vfctl"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_is_on_the_map_and_every_entry_exists() -> None:
    text = DOC.read_text()
    listed = set(re.findall(r"`(vfctl/[\w/]+\.(?:py|c))`", text))
    missing = [m for m in _modules() if m not in listed]
    gone = sorted(m for m in listed if not (ROOT / m).exists())
    assert not missing, f"modules missing from docs/architecture.md: {missing}"
    assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"


def test_no_import_cycle_between_modules() -> None:
    mods = {_dotted(m): m for m in _modules() if m.endswith(".py")}
    graph = {
        name: {i for i in _imports(rel) if i in mods and i != name} for name, rel in mods.items()
    }
    assert not _cycles(graph), (
        f"modules that import each other (maybe through others): {_cycles(graph)}"
    )


def test_the_cycle_check_finds_a_cycle_through_a_third_module() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_pure_middle_never_imports_typer() -> None:
    for rel in TYPER_FREE:  # a module renamed away must be renamed here too, not skipped
        tree = ast.parse((ROOT / rel).read_text())
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        } | {
            (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
        }
        assert "typer" not in names, f"{rel} imports typer"


def test_modules_stay_small() -> None:
    big = {
        m: n
        for m in _modules()
        if m.endswith(".py") and (n := len((ROOT / m).read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"
