"""The exit codes are one table (errors.EXIT_CODES): the man page prints it, README lists it."""

from __future__ import annotations

import re
from pathlib import Path

from vfctl import errors
from vfctl.manpage import pages

README = Path(__file__).resolve().parents[2] / "README.md"


def _subclasses(cls: type) -> set[type]:
    return {c for s in cls.__subclasses__() for c in {s} | _subclasses(s)}


def test_every_error_class_has_a_documented_code() -> None:
    from vfctl import cli, plan  # noqa: F401  (every module that defines error classes)

    # ExecutionFailed takes the code of the error it carries (set per instance)
    classes = _subclasses(errors.VfctlError) - {plan.ExecutionFailed}
    codes = {c.exit_code for c in classes}
    assert codes <= set(errors.EXIT_CODES), codes - set(errors.EXIT_CODES)
    assert {2, 3, 4, 5, 6, 7} <= codes


def test_readme_and_man_page_list_the_same_codes() -> None:
    rows = re.findall(r"^\| (\d) \| ", README.read_text(), re.M)
    assert [int(r) for r in rows] == sorted(errors.EXIT_CODES)
    page = pages()["vfctl.8"].replace("\\-", "-")
    for code, text in errors.EXIT_CODES.items():
        assert f".TP\n.B {code}\n{text}\n" in page, code
