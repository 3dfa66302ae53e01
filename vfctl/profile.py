"""Profiles: one host's desired SR-IOV state as YAML, checked against ONE schema definition.

The schema (:mod:`vfctl.profile_schema`) is the single source: the walker
(:mod:`vfctl.profile_walk`) checks the YAML node tree against it, so every error carries
``file:line:column`` and the key path; ``json_schema()`` turns it into the published
``profiles/schema.json`` and the docs are generated from that. Checks that need more than one
node (duplicate VF ids, two VFs in one slot, id >= total-vfs) run after the schema
(:mod:`vfctl.profile_semantics`), still located; checks that need the host run in
:mod:`vfctl.converge`.
"""

from __future__ import annotations

import yaml

from vfctl import profile_yaml
from vfctl.profile_doc import MAX_VF_ID as MAX_VF_ID
from vfctl.profile_doc import Path_ as Path_  # re-exported: callers know the loader's names
from vfctl.profile_doc import Problem as Problem
from vfctl.profile_doc import Profile as Profile
from vfctl.profile_doc import ProfileInvalid as ProfileInvalid
from vfctl.profile_doc import desired_of as desired_of
from vfctl.profile_doc import fmt_path as fmt_path
from vfctl.profile_doc import vf_bounds as vf_bounds
from vfctl.profile_doc import vf_ids as vf_ids
from vfctl.profile_schema import SCHEMA as SCHEMA
from vfctl.profile_schema import SETTING_KEYS as SETTING_KEYS
from vfctl.profile_schema import json_schema as json_schema
from vfctl.profile_semantics import semantic_problems
from vfctl.profile_walk import Walker


def loads(text: str, file: str = "<profile>") -> Profile:
    """Parse and check a profile; ProfileInvalid (exit 2) lists every problem found."""
    try:
        node = profile_yaml.compose(text)
    except profile_yaml.YamlRefused as e:
        raise ProfileInvalid([Problem(file, *e.loc, "", e.message)]) from None
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        raise ProfileInvalid(
            [Problem(file, line, col, "", f"YAML syntax: {e.problem or e.context}")]
        ) from None
    except yaml.YAMLError as e:
        raise ProfileInvalid([Problem(file, 1, 1, "", f"YAML: {e}")]) from None
    if node is None:
        raise ProfileInvalid([Problem(file, 1, 1, "", "empty profile: expected a mapping")])
    w = Walker(file)
    data = w.walk(SCHEMA, node, ())
    prof = Profile(data if isinstance(data, dict) else {}, file, w.locs)
    problems = list(w.problems)
    try:  # the checks across nodes also run on a partly invalid profile, skipping what is missing
        bad = {p.path for p in problems}  # one problem per node: the schema's wins
        for p in semantic_problems(prof):
            if p.path not in bad:
                problems.append(p)
    except (TypeError, KeyError, AttributeError, ValueError):
        pass
    if problems:
        raise ProfileInvalid(sorted(problems, key=lambda p: (p.line, p.column)))
    return prof


def read(path: str) -> str:
    """A profile's text from a file or ``-`` (stdin): bounded, never truncated, never blocking."""
    from vfctl.host.files import FileRefused

    name = "<stdin>" if path == "-" else path
    try:
        return profile_yaml.read_profile(path)
    except profile_yaml.YamlRefused as e:
        raise ProfileInvalid([Problem(name, *e.loc, "", e.message)]) from None
    except FileRefused as e:  # exists but refused: located like every other profile problem
        raise ProfileInvalid([Problem(name, 1, 1, "", e.reason)]) from None


def load(path: str, stdin_text: str | None = None) -> Profile:
    """From a file, or ``-`` for standard input (``stdin_text``, when given, holds it)."""
    if path == "-":
        return loads(stdin_text if stdin_text is not None else read(path), "<stdin>")
    return loads(read(path), path)
