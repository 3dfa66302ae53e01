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
    # every field is set (a field added to VF but not to plain() would be missing)
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(VF)}
    assert vars(fast) == {f.name: getattr(ref, f.name) for f in dataclasses.fields(VF)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.index = 5  # type: ignore[misc]
    assert dataclasses.replace(fast, netdev=None) == dataclasses.replace(ref, netdev=None)
