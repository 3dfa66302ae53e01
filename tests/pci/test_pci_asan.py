"""Build the extension with -fsanitize=address,undefined and run it over thousands of inputs."""

from __future__ import annotations

from pathlib import Path

from asan import run_driver, sanitized


def test_sanitized_extension_is_clean(tmp_path: Path) -> None:
    so = sanitized("_configspace")
    driver = Path(__file__).parent / "asan_driver.py"
    run_driver(driver, [so, str(tmp_path), "3000"], asan=True, timeout=300)
