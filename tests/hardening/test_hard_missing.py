"""Issue 13: a path the user named that does not exist is exit 3 (not found) for every command.

``decode`` documented exit 3 for a missing file while ``apply`` gave 2 for a missing profile.
Now one rule (docs/inputs.md): a user-named path (argument, option, environment variable, the
``--root`` tree) that is not there is exit 3 naming it; one that exists but is the wrong kind,
size or mode stays exit 2. Nothing is written either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hard import cli
from test_hard_secrets import BASE, attach, token_file

GONE = "GONE"  # replaced by a path under tmp_path that does not exist


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("decode", GONE), GONE),
        (("plan", GONE), GONE),
        (("apply", GONE), GONE),
        (("apply", GONE, "--check"), GONE),
        (("drift", GONE), GONE),
        (("persist", "enable", GONE), GONE),
        (("metrics", "--profile", GONE), GONE),
        (("metrics", "--textfile", GONE), f"--textfile {GONE}"),
        (("export", "-o", f"{GONE}/out.yaml"), f"-o {GONE}/out.yaml"),
    ],
)
def test_missing_user_named_file_is_exit_3(
    simroot: Path, tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    gone = str(tmp_path / "no-such")
    before = _tree(simroot)
    for js in ((), ("--json",)) if args[0] in ("plan", "apply") else ((),):
        r = cli(simroot, *(a.replace(GONE, gone) for a in args), *js)
        assert r.code == 3, r.out + r.err
        where = named.replace(GONE, gone)
        if js:
            assert r.json()["error"]["kind"] == "not-found"
            assert where in r.json()["error"]["message"]
        else:
            assert r.err.startswith(f"vfctl: error: {where}"), r.err
            assert r.err.count("\n") == 1
    assert not Path(gone).exists()
    assert _tree(simroot) == before


@pytest.mark.parametrize("args", [("list",), ("show", "enp1s0f0"), ("persist", "status")])
def test_missing_root_is_exit_3(tmp_path: Path, args: tuple[str, ...]) -> None:
    gone = tmp_path / "no-such"
    r = cli(gone, *args)
    assert r.code == 3, r.err
    assert r.err == f"vfctl: error: host root {gone} does not exist\n"


def test_snapshot_of_a_missing_root_is_exit_3_and_writes_nothing(tmp_path: Path) -> None:
    gone, dest = tmp_path / "no-such", tmp_path / "snap"
    r = cli(gone, "sim", "snapshot", str(dest))
    assert r.code == 3, r.err
    assert f"host root {gone} does not exist" in r.err
    assert not dest.exists()  # before: exit 0 and a snapshot of an empty host


def test_a_present_but_wrong_file_stays_exit_2(simroot: Path, tmp_path: Path) -> None:
    """The other half of the rule: the path exists, it is just not what was asked for."""
    assert cli(simroot, "decode", str(tmp_path)).code == 2
    assert cli(simroot, "apply", str(tmp_path)).code == 2
    assert cli(tmp_path, "list").code == 2  # a directory that is no sysfs root


def test_missing_token_file_is_exit_3_before_connecting(simroot: Path, tmp_path: Path) -> None:
    gone = str(tmp_path / "no-such-token")
    for code, printed in attach(simroot, {**BASE, "VFCTL_PVE_TOKEN_FILE": gone}):
        assert code == 3, printed
        assert f"token file {gone}: no such file" in printed
        assert "cannot connect" not in printed


def test_missing_pve_ca_is_exit_3_before_connecting(simroot: Path, tmp_path: Path) -> None:
    gone = str(tmp_path / "no-such-ca.pem")
    env = {**BASE, "VFCTL_PVE_TOKEN_FILE": token_file(tmp_path, b"3f2a9c1e-7d44-4b8e\n")}
    for js in ((), ("--json",)):
        args = ("--pve-ca", gone, "--backend", "proxmox", "attach", "101", "enp1s0f0", "vf1")
        r = cli(simroot, *args, *js, env=env)
        assert r.code == 3, r.out + r.err
        assert f"--pve-ca {gone}: no such file" in r.out + r.err
        assert "cannot connect" not in r.out + r.err
