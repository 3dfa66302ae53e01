"""Checks across nodes (duplicate ids, slots, MACs, settings rules), still located."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from vfctl.errors import UsageError
from vfctl.profile_doc import MAX_VF_ID, Path_, Problem, Profile, desired_of, vf_bounds
from vfctl.profile_schema import SETTING_KEYS


def _settings_problems(
    prof: Profile, at: Path_, entry: Mapping[str, Any], own: Mapping[str, Any] | None = None
) -> Iterator[Problem]:
    """vfsettings' own rules, located at the key when one key alone breaks them."""
    from vfctl import vfsettings

    own = entry if own is None else own
    bad = False
    for key, _attr in SETTING_KEYS:
        if key in own:
            try:
                vfsettings.validate(desired_of({key: own[key]}))
            except UsageError as e:
                bad = True
                yield prof.problem((*at, key), e.message)
    if not bad:
        try:
            vfsettings.validate(desired_of(entry))
        except UsageError as e:
            yield prof.problem(at, e.message)


class _Spans:
    """Disjoint id ranges, sorted: overlap checks in O(log n), never one entry per id."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.where: list[Path_] = []

    def first_overlap(self, lo: int, hi: int) -> tuple[int, Path_] | None:
        """The smallest id of [lo, hi] already taken, and where."""
        import bisect

        k = bisect.bisect_left(self.ends, lo)  # ends are sorted too: the spans are disjoint
        if k < len(self.starts) and self.starts[k] <= hi:
            return max(lo, self.starts[k]), self.where[k]
        return None

    def add(self, lo: int, hi: int, where: Path_) -> None:
        import bisect

        k = bisect.bisect_left(self.starts, lo)
        self.starts.insert(k, lo)
        self.ends.insert(k, hi)
        self.where.insert(k, where)


def semantic_problems(prof: Profile) -> Iterator[Problem]:
    from vfctl import profile_pools

    yield from profile_pools.problems(prof)
    d = prof.defaults
    mac = d.get("mac-address")
    if mac is not None and mac != "auto":
        yield prof.problem(
            ("defaults", "mac-address"),
            "a fixed MAC in defaults would give every VF the same MAC; use auto, or set it per VF",
        )
    yield from _settings_problems(prof, ("defaults",), d)
    slots: dict[tuple[str, str, int], Path_] = {}
    macs: dict[str, Path_] = {}
    for pi, pf in enumerate(prof.pfs):
        total = pf.get("total-vfs")
        spans = _Spans()
        for vi, vf in enumerate(pf.get("vfs") or []):
            at: Path_ = ("pfs", pi, "vfs", vi)
            n_ids = 0
            if vf.get("id") is not None:
                lo, hi = vf_bounds(vf["id"])
                if hi < lo:
                    yield prof.problem((*at, "id"), f"invalid range {vf['id']!r}: end before start")
                elif hi > MAX_VF_ID:
                    yield prof.problem(
                        (*at, "id"), f"VF id {hi} is out of range: VF ids are 0-{MAX_VF_ID}"
                    )
                else:
                    n_ids = hi - lo + 1
                    dup = spans.first_overlap(lo, hi)
                    if dup is not None:
                        line = prof.locs.get(dup[1], (0, 0))[0]
                        yield prof.problem(
                            (*at, "id"), f"duplicate VF id {dup[0]} (also at line {line})"
                        )
                    else:
                        spans.add(lo, hi, (*at, "id"))
                    if total is not None and hi >= total:
                        yield prof.problem(
                            (*at, "id"),
                            f"VF id {hi} is out of range: total-vfs is {total} (ids 0-{total - 1})"
                            if total
                            else f"VF id {hi} is out of range: total-vfs is 0",
                        )
            merged = {**{k: v for k, v in d.items() if k != "drivers-autoprobe"}, **vf}
            yield from _settings_problems(prof, at, merged, own=vf)
            m = vf.get("mac-address")
            if m is not None and m != "auto":
                norm = m.lower().replace("-", ":")
                if n_ids > 1:
                    yield prof.problem(
                        (*at, "mac-address"),
                        f"a fixed MAC on {n_ids} VFs would repeat it; use auto or one entry per VF",
                    )
                elif norm in macs:
                    line = prof.locs.get(macs[norm], (0, 0))[0]
                    yield prof.problem(
                        (*at, "mac-address"), f"MAC {norm} is also given at line {line}"
                    )
                macs.setdefault(norm, (*at, "mac-address"))
            att = vf.get("attach")
            if att is not None:
                if n_ids > 1 and att.get("slot") is not None:
                    yield prof.problem(
                        (*at, "attach", "slot"), f"{n_ids} VFs cannot share one slot"
                    )
                if att.get("slot") is not None:
                    key = (att["backend"], str(att["vm"]).lower().removeprefix("vm"), att["slot"])
                    if key in slots:
                        line = prof.locs.get(slots[key], (0, 0))[0]
                        yield prof.problem(
                            (*at, "attach", "slot"),
                            f"two VFs attached to slot {att['slot']} of VM {att['vm']} "
                            f"(the other at line {line})",
                        )
                    slots.setdefault(key, (*at, "attach", "slot"))
