"""One register layout: every numeric ``#define`` in _configspace.c has a Python twin, equal.

Python defines each register once (``vfctl/pci/regs.py``); the C parser cannot import it and
keeps its own ``#define``s, as pciutils keeps ``lib/header.h``. This test reads the C source
(no compiler needed) and fails on a value that differs, on a C define with no Python twin, on a
stale entry in the tables below, and on a capability-name table or ACS bit list that differs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vfctl.pci import capnames, caps, configspace, regs, walk

C_SOURCE = Path(configspace.__file__).parent / "_configspace.c"

# A C define whose Python twin is not ``regs.<same name>``: C name -> (module, attribute).
TWINS: dict[str, tuple[object, str]] = {
    "MAX_ERRORS": (walk, "MAX_ERRORS"),
    "ERROR_LEN": (walk, "ERROR_LEN"),
}
# Numeric C defines with no Python counterpart, and why.
C_ONLY: dict[str, str] = {
    "CHUNK": "devices decoded per GIL release; the Python twin never releases the GIL",
}
# C name table -> the Python dict it must equal.
NAME_TABLES: dict[str, dict[int, str]] = {
    "cap_names": capnames.CAP_NAMES,
    "ext_cap_names": capnames.EXT_CAP_NAMES,
    "device_types": capnames.DEVICE_TYPES,
    "link_speeds": capnames.LINK_SPEEDS,
}

_DEFINE = re.compile(r"^#define[ \t]+(\w+)[ \t]+(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*\b", re.M)
_TABLE = re.compile(r"static const char \*const (\w+)\[\w*\] = \{(.*?)\};", re.S)
_ENTRY = re.compile(r'\[(0x[0-9a-fA-F]+|[0-9]+)\] = "([^"]*)"')
_ACS = re.compile(r"\{K_(\w+), K_ctrl_\1, (\w+)\}")


def c_defines(src: str) -> dict[str, int]:
    return {name: int(value, 0) for name, value in _DEFINE.findall(src)}


def python_twin(name: str) -> int | None:
    module, attr = TWINS.get(name, (regs, name))
    value = getattr(module, attr, None)
    return value if isinstance(value, int) else None


def define_problems(src: str) -> list[str]:
    """Every way the C defines disagree with Python; empty when they are one layout."""
    defines = c_defines(src)
    problems = [f"stale C_ONLY entry {n}" for n in C_ONLY if n not in defines]
    problems += [f"stale TWINS entry {n}" for n in TWINS if n not in defines]
    for name, value in sorted(defines.items()):
        if name in C_ONLY:
            continue
        twin = python_twin(name)
        if twin is None:
            problems.append(f"{name} (0x{value:x}) has no Python twin in regs.py")
        elif twin != value:
            problems.append(f"{name}: C 0x{value:x}, Python 0x{twin:x}")
    return problems


def c_tables(src: str) -> dict[str, dict[int, str]]:
    """The designated-initialiser string tables (``[0x01] = "…"``), by name."""
    tables = {name: dict(_ENTRY.findall(body)) for name, body in _TABLE.findall(src)}
    return {name: {int(k, 0): v for k, v in t.items()} for name, t in tables.items() if t}


@pytest.fixture(scope="module")
def src() -> str:
    return C_SOURCE.read_text()


def test_every_c_define_has_an_equal_python_twin(src: str) -> None:
    assert len(c_defines(src)) > 90  # the parser still sees the register block
    assert define_problems(src) == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("#define PCI_IOV_NUM_VF 0x10", "#define PCI_IOV_NUM_VF 0x12"), "PCI_IOV_NUM_VF: C 0x12"),
        (("#define PCI_ACS_DT 0x0040", "#define PCI_ACS_XX 0x0040"), "PCI_ACS_XX (0x40) has no"),
        (("#define CHUNK 256", "#define CHUNKS 256"), "stale C_ONLY entry CHUNK"),
        (("#define MAX_ERRORS 16", "#define MAX_ERRORS 17"), "MAX_ERRORS: C 0x11"),
        (
            ("#define PCI_IOV_CAP_VFM 0x00000001u", "#define PCI_IOV_CAP_VFM 0x2u"),
            "PCI_IOV_CAP_VFM",
        ),
    ],
)
def test_a_drifted_define_is_caught(src: str, edit: tuple[str, str], problem: str) -> None:
    """The check itself: each kind of drift in a copy of the C source is reported."""
    assert edit[0] in src
    problems = define_problems(src.replace(edit[0], edit[1]))
    assert any(p.startswith(problem) for p in problems), problems


def test_name_tables_are_the_pythons(src: str) -> None:
    tables = c_tables(src)
    assert set(tables) == set(NAME_TABLES)
    for name, table in NAME_TABLES.items():
        assert tables[name] == table, name


def test_acs_bits_are_the_pythons(src: str) -> None:
    """Same keys, same order, same bits: the C table names the PCI_ACS_* defines."""
    defines = c_defines(src)
    c_bits = [(key, defines[define]) for key, define in _ACS.findall(src)]
    assert c_bits == list(caps.ACS_BITS)


def test_no_python_module_defines_registers_of_its_own() -> None:
    """Python defines each register once: an int ``PCI_*`` constant anywhere but regs.py is a
    second definition (cfgbuild had 60 of them, with other names)."""
    pkg = Path(regs.__file__).parents[1]
    found = []
    for path in sorted(pkg.rglob("*.py")):
        if path == Path(regs.__file__):
            continue
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            value = getattr(node, "value", None)
            for t in targets:
                names = [e.id for e in ast.walk(t) if isinstance(e, ast.Name)]
                if any(n.startswith(("PCI_", "PCIE_")) for n in names) and not (
                    isinstance(value, ast.Constant) and isinstance(value.value, str)
                ):
                    found.append(f"{path.relative_to(pkg)}:{node.lineno}: {', '.join(names)}")
    assert found == []
