"""A lab that fails says where its console log is, and keeps it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import lab_required
from .runner import BOOT_ATTEMPTS, QEMU, Lab, LabConfig, LabError, LabNotPrepared, find_artifacts

pytestmark = pytest.mark.lab


def _prepared() -> None:
    try:
        find_artifacts()
    except LabNotPrepared as e:
        if lab_required():
            pytest.fail(f"lab required but not prepared: {e}")
        pytest.skip(str(e))


def _crashing_qemu(tmp_path: Path, then: str) -> tuple[str, Path]:
    """A QEMU stand-in that aborts as QEMU 10 once did in CI (SIGABRT during boot), then THEN."""
    count = tmp_path / "starts"
    script = tmp_path / "qemu"
    script.write_text(
        "#!/bin/sh\n"
        f"echo start >> {count}\n"
        f"if [ $(wc -l < {count}) -eq 1 ] || [ {then} = abort ]; then\n"
        "  echo 'qemu-system-x86_64: fake: Assertion failed' >&2; ulimit -c 0; kill -ABRT $$\n"
        "fi\n"
        f'exec {QEMU} "$@"\n'
    )
    script.chmod(0o755)
    return str(script), count


def test_qemu_that_aborts_while_booting_gets_another_boot(tmp_path: Path) -> None:
    _prepared()
    qemu, count = _crashing_qemu(tmp_path, then="boot")
    with Lab(LabConfig(qemu=qemu)) as lab:
        assert lab.run("echo up", check=True).stdout == "up\n"
    # the stand-in's abort, then the real QEMU (which itself aborts now and then: see start())
    assert 2 <= count.read_text().count("start") <= BOOT_ATTEMPTS


def test_qemu_that_aborts_on_every_boot_fails_with_its_own_words(tmp_path: Path) -> None:
    _prepared()
    qemu, count = _crashing_qemu(tmp_path, then="abort")
    lab = Lab(LabConfig(qemu=qemu))
    try:
        with pytest.raises(LabError, match=r"QEMU exited with status -6") as info:
            lab.start()
        assert "fake: Assertion failed" in str(info.value)  # the QEMU log's tail, not just a path
        assert count.read_text().count("start") == BOOT_ATTEMPTS  # not one, not forever
    finally:
        shutil.rmtree(lab.boot_dir, ignore_errors=True)


def test_boot_timeout_names_and_keeps_the_console_log() -> None:
    _prepared()
    lab = Lab(LabConfig(boot_timeout=0.5))
    with pytest.raises(LabError, match=r"console log: \S+console\.log") as info:
        lab.start()
    try:
        log = Path(str(info.value).split("console log: ", 1)[1].split(";", 1)[0])
        assert log.exists() and log.parent == lab.boot_dir
        with pytest.raises(LabError, match="not running"):
            lab.run("true")
    finally:
        shutil.rmtree(lab.boot_dir, ignore_errors=True)
