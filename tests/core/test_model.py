"""The model's cheap constructor makes the same objects as the dataclass's own."""

from __future__ import annotations

import dataclasses

import pytest

from vfctl.model import VF, VFSettings


def test_plain_vf_equals_the_dataclass_init() -> None:
    s = VFSettings(vlan=3)
    args = (4, "0000:01:10.4", "vfio-pci", None, "eth9", 17, "8086", "10ca", s)
    fast, ref = VF.plain(*args), VF(*args)
    assert (fast, hash(fast), repr(fast)) == (ref, hash(ref), repr(ref))
    assert fast.to_json() == ref.to_json()
    # every field is set, or left to a class default that says "unused" (a field added to
    # VF but not to plain() would be missing)
    unused = {"attached_to": (), "held_by": None, "pool": None}
    assert set(vars(fast)) | set(unused) == {f.name for f in dataclasses.fields(VF)}
    assert {k: getattr(VF, k) for k in unused} == unused
    assert {k: getattr(fast, k) for k in unused} == unused
    assert vars(fast) == {k: getattr(ref, k) for k in vars(fast)}
    assert dataclasses.asdict(fast) == dataclasses.asdict(ref)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.index = 5  # type: ignore[misc]
    assert dataclasses.replace(fast, netdev=None) == dataclasses.replace(ref, netdev=None)
