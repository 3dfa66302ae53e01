"""The `lab` fixture: one real-kernel guest per test module (see docs/lab.md)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from needs import required

from .runner import Lab, LabConfig, LabNotPrepared, find_artifacts

_BOOTS: list[str] = []


def lab_required() -> bool:
    """In CI (or with VFCTL_LAB=required) a missing lab is a failure, not a skip."""
    return required("VFCTL_LAB")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "lab" in getattr(item, "fixturenames", ()):
        module = getattr(item, "module", None)
        if module is not None:
            module._lab_test_failed = True
    return report


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A booted guest shared by the module's tests; LAB_CONFIG in the module shapes it."""
    try:
        find_artifacts()
    except LabNotPrepared as e:
        if lab_required():
            pytest.fail(f"lab required but not prepared: {e}")
        pytest.skip(str(e))
    config = getattr(request.module, "LAB_CONFIG", LabConfig())
    with Lab(config) as booted:
        yield booted
        if getattr(request.module, "_lab_test_failed", False):
            booted.keep = True
        n = booted.commands
        per = booted.command_seconds / n if n else 0.0
        kept = f", kept {booted.boot_dir}" if booted.keep else ""
        _BOOTS.append(
            f"{Path(str(request.module.__file__)).name}: kernel {booted.kernel_version}, "
            f"boot {booted.boot_seconds:.1f} s, {n} commands, {per:.2f} s/command{kept}"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _BOOTS:
        terminalreporter.section("real-kernel lab")
        for line in _BOOTS:
            terminalreporter.write_line(line)
