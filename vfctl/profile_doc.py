"""A loaded profile (plain data plus where each node was) and its located problems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vfctl import vfattrs
from vfctl.errors import UsageError

Path_ = tuple[str | int, ...]
MAX_VF_ID = 65535  # NumVFs/TotalVFs are 16-bit registers (PCIe SR-IOV capability)

# ---------------------------------------------------------------- errors and locations


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # key path: pfs[0].vfs[2].id
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ProfileInvalid(UsageError):
    """Every problem found in a profile (exit 2); the message has one line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


def fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# ---------------------------------------------------------------- loading


@dataclass
class Profile:
    """A loaded, schema-valid profile: plain data plus where each node was."""

    data: dict[str, Any]
    file: str
    locs: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: Path_, message: str) -> Problem:
        """A located problem; a missing path falls back to its nearest located parent."""
        p = path
        while p not in self.locs and p:
            p = p[:-1]
        line, col = self.locs.get(p, (1, 1))
        return Problem(self.file, line, col, fmt_path(path), message)

    @property
    def host(self) -> str | None:
        h = self.data.get("host")
        return None if h is None else str(h)

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.data.get("defaults") or {})

    @property
    def pfs(self) -> list[dict[str, Any]]:
        return list(self.data.get("pfs") or [])


# ---------------------------------------------------------------- checks across nodes


def vf_bounds(spec: Any) -> tuple[int, int]:
    """First and last index a VF entry's ``id`` names, without expanding the range."""
    if isinstance(spec, int):
        return spec, spec
    lo, hi = (int(x) for x in str(spec).split("-"))
    return lo, hi


def vf_ids(spec: Any) -> list[int]:
    """The indexes a VF entry's ``id`` names (an int or an inclusive ``a-b`` range).

    Only for ranges already checked against the PF (at most MAX_VF_ID + 1 ids).
    """
    lo, hi = vf_bounds(spec)
    if hi > MAX_VF_ID:
        raise ValueError(f"VF id {hi} above {MAX_VF_ID}")
    return list(range(lo, hi + 1))


def desired_of(entry: Mapping[str, Any]) -> vfattrs.Desired:
    """The VF settings in an entry, typed (unset: None)."""
    return vfattrs.Desired.from_yaml(entry)
