"""Issue 11 item 5: a hostile profile costs exit 2 with file:line:col, in bounded memory and CPU.

Each file runs through `vfctl plan` in a child process with RLIMIT_AS/RLIMIT_CPU (hard.py): a
MemoryError, a RecursionError, a blow-up or a traceback fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hard import vfctl

from vfctl import profile

HEAD = "version: 1\npfs:\n  - match: {netdev: eth2}\n"
LOCATED = re.compile(r"^vfctl: error: (?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): ", re.M)


def laughs(levels: int = 12) -> str:
    """Anchors/aliases that expand 9**levels times for any code walking the tree (~1 KB)."""
    out = 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, levels):
        out += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


CASES = {
    "huge-range": (HEAD + '    vfs:\n      - id: "0-20000000"\n', 5, "0-65535"),
    "huge-int-id": (HEAD + "    vfs:\n      - id: 70000\n", 5, "maximum 65535"),
    "laughs": ("version: 1\npfs: []\n" + laughs(), 3, "aliases are not allowed"),
    "one-alias": (HEAD + "    vfs:\n      - &v {id: 1}\n", 5, "aliases are not allowed"),
    "nested": ("version: 1\npfs: " + "[" * 5000 + "]" * 5000 + "\n", 2, "nest"),
    "nested-40": ("version: 1\npfs: " + "[" * 40 + "]" * 40 + "\n", 2, "nested deeper than 32"),
    "digits": ("version: 1\npfs: []\nx: " + "9" * 200_000 + "\n", 3, "200000 digits"),
    "sexagesimal": (HEAD + "    vfs:\n      - id: 1\n        vlan-id: 1:30\n", 6, "'1:30'"),
    "octal-1.1": (HEAD + "    vfs:\n      - id: 1\n        trust: on\n", 6, "'on'"),
    "explicit-int": (HEAD + "    vfs:\n      - id: !!int abc\n", 5, "invalid integer"),
    "not-utf8": ("version: 1\npfs: []\n# \udcff\n", 3, "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_profile_exit_2_located_bounded(name: str, tmp_path: Path) -> None:
    text, line, needle = CASES[name]
    f = tmp_path / "p.yaml"
    f.write_bytes(text.encode("utf-8", "surrogateescape"))
    r = vfctl("--backend", "none", "plan", str(f), root=tmp_path)
    assert r.code == 2, r.err
    assert "Traceback" not in r.err
    m = LOCATED.search(r.err)
    assert m is not None, r.err
    assert (m["file"], int(m["line"])) == (str(f), line), r.err
    assert needle in r.err


def test_yaml_12_numbers_in_a_valid_profile() -> None:
    """1.2 core schema: 0o17 is octal, 010 is ten, an unquoted MAC is a string."""
    p = profile.loads(
        HEAD
        + "    vfs:\n      - id: 0o3\n        vlan-id: 010\n        mac-address: 02:00:00:00:00:0a\n"
    )
    vf = p.pfs[0]["vfs"][0]
    assert (vf["id"], vf["vlan-id"], vf["mac-address"]) == (3, 10, "02:00:00:00:00:0a")


def oversize() -> bytes:
    """A valid profile whose `total-vfs: 16` straddles the size limit: cut, it would read 1."""
    max_bytes = 1 << 20  # vfctl.profile_yaml.MAX_BYTES (the old code cut at 4 MiB)
    tail = "version: 1\npfs:\n  - match: {netdev: eth2}\n    total-vfs: 16\n"
    pad = "#" * (max_bytes - len(tail) + 1) + "\n"
    text = pad + tail
    cut = text.encode()[:max_bytes].decode()
    assert cut.rstrip().endswith("total-vfs: 1")  # the old truncation would have applied 1
    return text.encode()


def test_oversize_file_refused_not_truncated(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_bytes(oversize())
    r = vfctl("--backend", "none", "apply", "--check", str(f), root=tmp_path)
    assert r.code == 2, r.err
    assert f"{f}:1:1: profile larger than 1024 KiB" in r.err


def test_oversize_stdin_refused_not_truncated(tmp_path: Path) -> None:
    r = vfctl("--backend", "none", "apply", "--check", "-", stdin=oversize(), root=tmp_path)
    assert r.code == 2, r.err
    assert "<stdin>:1:1: profile larger than 1024 KiB" in r.err


def test_many_ranges_checked_without_expanding(tmp_path: Path) -> None:
    """Thousands of full-width ranges: duplicates found by interval, not one entry per id."""
    body = "".join('      - id: "0-65535"\n' for _ in range(5000))
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + "    vfs:\n" + body)
    r = vfctl("--backend", "none", "plan", str(f), root=tmp_path)
    assert r.code == 2, r.err
    assert "duplicate VF id 0 (also at line 5)" in r.err


def test_export_quotes_strings_yaml_12_would_change() -> None:
    from vfctl.profile_export import dump_profile

    text = dump_profile({"version": 1, "host": "0o17", "pfs": [{"match": {"netdev": "1:30"}}]})
    doc = profile.loads(text)
    assert doc.host == "0o17" and doc.pfs[0]["match"]["netdev"] == "1:30"
