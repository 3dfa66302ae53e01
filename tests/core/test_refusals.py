"""A refusal says which flag lifts it in a field (``RefusedError.override``), not only in prose.

Callers (a profile's attach refusals in ``converge``) used to search the message for
``"--force"``, which also matched "not even --force" and "--force-host-nic". The scan below
keeps every raise site honest: a message that offers a flag carries it as ``override``, and a
site that sets ``override`` names that flag in its message.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vfctl
from vfctl import converge
from vfctl.errors import NotFoundError, RefusedError, VfctlError
from vfctl.host.files import FileRefused
from vfctl.journal import JournalInvalid

SRC = Path(vfctl.__file__).parent
# a flag offered, not "not even --force" / "never ..., not even with --force"
_OFFER = re.compile(r"(?<!not even )(?<!not even with )(--force(?:-host-nic)?)\b")


def _literals(node: ast.AST) -> str:
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _raise_sites() -> list[tuple[str, ast.Call]]:
    sites = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RefusedError":
                sites.append((f"{path.relative_to(SRC)}:{node.lineno}", node))
    return sites


def test_every_offered_flag_is_the_override_field() -> None:
    sites = _raise_sites()
    assert len(sites) > 50
    wrong = []
    for where, call in sites:
        text = _literals(call.args[0]) if call.args else ""
        offered = set(_OFFER.findall(text))
        kw = {k.arg: k.value for k in call.keywords}
        override = kw.get("override")
        if offered and override is None:
            wrong.append(f"{where}: offers {sorted(offered)} without override=")
        if override is not None:
            flags = {
                n.value
                for n in ast.walk(override)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            if not flags or not flags <= offered:
                wrong.append(f"{where}: override={sorted(flags)}, message offers {sorted(offered)}")
    assert wrong == []


def test_not_even_force_is_not_an_offer() -> None:
    assert _OFFER.findall("stop them first (not even --force deletes it under them)") == []
    assert _OFFER.findall("vfctl never edits it, not even with --force; attach") == []
    assert _OFFER.findall("x (--force-host-nic to do it anyway)") == ["--force-host-nic"]


@pytest.mark.parametrize(
    ("err", "hint"),
    [
        (RefusedError("VF is in VM 101; use --force to move it", override="--force"), "MOVE"),
        # the old message search took these two for overridable refusals
        (RefusedError("mapping m: vfctl never edits it, not even with --force", hint="h"), "h"),
        (RefusedError("pool p: stop them first (not even --force deletes it)"), None),
        (NotFoundError("VM 999 not found", hint="h2"), "h2"),
    ],
)
def test_a_profile_never_forces_only_for_overridable_refusals(
    err: VfctlError, hint: str | None
) -> None:
    out = converge._located(err, None, ("pfs", 0, "vfs", 1))
    assert type(out) is type(err) and out.message == err.message
    assert out.hint == (converge._MOVE_HINT if hint == "MOVE" else hint)
    assert out.exit_code == err.exit_code


@pytest.mark.parametrize(
    "err",
    [
        RefusedError("m", hint="h", override="--force"),
        FileRefused("/p", "not a regular file"),
        JournalInvalid("journal unreadable"),
    ],
)
def test_with_message_keeps_class_and_fields(err: VfctlError) -> None:
    new = err.with_message(f"where: {err.message}")
    assert type(new) is type(err) and new.exit_code == err.exit_code
    assert new.message == str(new) == f"where: {err.message}"
    assert {k: v for k, v in vars(new).items() if k != "message"} == {
        k: v for k, v in vars(err).items() if k != "message"
    }
    assert err.message == str(err)  # the original is untouched
