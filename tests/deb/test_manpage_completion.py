"""Man pages and shell completion come from the live command tree: every command has a page
with its options, and completion offers commands, options, PFs, VF ids, VMs and paths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from needs import missing

from vfctl import completion, manpage, sim
from vfctl.cli import app

REPO = Path(__file__).parents[2]
ROOT = typer.main.get_command(app)


def test_a_page_per_command_with_every_option() -> None:
    pages = manpage.pages()
    for path, cmd in manpage.walk(ROOT):
        name = "-".join(("vfctl", *path)) + ".8"
        assert name in pages, name
        text = pages[name]
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                assert manpage.esc(p.opts[0]) in text, (name, p.opts[0])
    assert {"vfctl.8", "vfctl-set.8", "vfctl-sim-init.8", "vfctl-persist-enable.8"} <= set(pages)
    assert ".SH EXIT STATUS" in pages["vfctl.8"]


def test_pages_render_without_groff_warnings(tmp_path: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    assert manpage.main([str(tmp_path)]) == 0
    for page in tmp_path.glob("*.8"):
        r = subprocess.run(
            ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True
        )
        assert r.returncode == 0 and not r.stderr, (page.name, r.stderr)


def test_roff_escaping() -> None:
    assert manpage.esc(".TH evil\n'x") == "\\&.TH evil\n\\&'x"
    assert manpage.esc("a\\b-c") == "a\\eb\\-c"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("h")
    sim.init(root, "default")
    from typer.testing import CliRunner

    r = CliRunner().invoke(
        app, ["--root", str(root), "--backend", "none", "enable", "enp1s0f0", "3"]
    )
    assert r.exit_code == 0, r.output
    (root / "etc/pve/qemu-server").mkdir(parents=True)
    for vmid in ("101", "102"):
        (root / f"etc/pve/qemu-server/{vmid}.conf").write_text("")
    return str(root)


def cands(line: str, env_root: str | None = None) -> list[str]:
    words = line.split(" ")[1:]
    return completion.candidates(ROOT, words, len(words) - 1, env_root)


def test_commands_and_options() -> None:
    assert cands("vfctl en") == ["enable"]
    assert set(cands("vfctl sim ")) == {"init", "snapshot"}
    assert "--max-tx-rate" in cands("vfctl set eth0 vf1 --m")
    assert cands("vfctl --backend ") == ["auto", "none", "libvirt", "proxmox"]
    assert cands("vfctl --root ") == [completion.DIRS]
    assert cands("vfctl apply ") == [completion.FILES]


def test_dynamic_host_names(host: str) -> None:
    assert "enp1s0f0" in cands(f"vfctl --root {host} show enp1")
    assert cands(f"vfctl --root={host} show 0000:01:00.") == ["0000:01:00.0", "0000:01:00.1"]
    assert cands("vfctl show enp2", env_root=host) == ["enp2s0f0", "enp2s0f1"]
    assert cands(f"vfctl --root {host} set enp1s0f0 ") == ["vf0", "vf1", "vf2"]
    assert cands(f"vfctl --root {host} bind 0000:01:00.0 vf0 v") == ["vf0", "vf1", "vf2"]
    assert cands(f"vfctl --root {host} attach ") == ["101", "102"]
    assert cands(f"vfctl --root {host} set enp1s0f0 vf1 extra") == []
    assert cands("vfctl --root /nonexistent show ") == []


def test_bash_script_offers_what_vfctl_says(host: str) -> None:
    """The shipped bash script, run by bash, with vfctl from this checkout."""
    exe = shutil.which("vfctl", path=str(Path(__import__("sys").executable).parent))
    assert exe is not None
    script = (
        'source "$1"; COMP_LINE=$2; read -ra COMP_WORDS <<<"$COMP_LINE";'
        ' [[ $COMP_LINE == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));'
        ' COMP_WORDS[0]=$3; _vfctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    bash = REPO / "contrib/completion/vfctl.bash"

    def run(line: str) -> list[str]:
        r = subprocess.run(
            ["bash", "-c", script, "_", str(bash), line, exe],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [x for x in r.stdout.splitlines() if x]

    assert run("vfctl en") == ["enable"]
    assert "enp1s0f0" in run(f"vfctl --root {host} show enp")
    assert run(f"vfctl --root {host} set enp1s0f0 vf") == ["vf0", "vf1", "vf2"]


def _shell(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        missing(f"{name} is missing (deps/apt-deb.txt)", "VFCTL_DEB")
    return exe


def _env() -> dict[str, str]:
    import os
    import sys

    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def test_fish_script(host: str) -> None:
    fish = REPO / "contrib/completion/vfctl.fish"

    def run(line: str) -> list[str]:
        r = subprocess.run(
            [_shell("fish"), "-c", f"source {fish}; complete -C '{line}'"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        return r.stdout.split()

    assert run("vfctl en") == ["enable"]
    assert run(f"vfctl --root {host} show enp2") == ["enp2s0f0", "enp2s0f1"]
    assert run(f"vfctl --root {host} set enp1s0f0 v") == ["vf0", "vf1", "vf2"]


def test_zsh_script(host: str) -> None:
    """zsh's compadd/_files stand-ins print what the script offers (no terminal needed)."""
    stubs = "compadd() { [[ $1 == -a ]] && print -l -- ${(P)2}; }; _files() { print FILES; };"

    def run(*words: str) -> list[str]:
        script = f"{stubs} words=({' '.join(repr(w) for w in words)}); CURRENT={len(words)};"
        script += f" source {REPO / 'contrib/completion/_vfctl'}"
        r = subprocess.run(
            [_shell("zsh"), "-f", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        return r.stdout.split()

    assert run("vfctl", "en") == ["enable"]
    assert run("vfctl", "--root", host, "set", "enp1s0f0", "v") == ["vf0", "vf1", "vf2"]
    assert run("vfctl", "apply", "") == ["FILES"]
