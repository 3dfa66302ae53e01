"""A lab that fails says where its console log is, and keeps it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import lab_required
from .runner import Lab, LabConfig, LabError, LabNotPrepared, find_artifacts

pytestmark = pytest.mark.lab


def test_boot_timeout_names_and_keeps_the_console_log() -> None:
    try:
        find_artifacts()
    except LabNotPrepared as e:
        if lab_required():
            pytest.fail(f"lab required but not prepared: {e}")
        pytest.skip(str(e))
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
