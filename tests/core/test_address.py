from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfctl.errors import UsageError
from vfctl.host.open import open_host
from vfctl.host.sysfs import check_name
from vfctl.pci import address


@pytest.mark.parametrize(("text", "want"), [
    ("0000:03:00.0", "0000:03:00.0"), ("03:00.1", "0000:03:00.1"), ("ABCD:0F:1f.7", "abcd:0f:1f.7"),
])
def test_parse_forms(text: str, want: str) -> None:
    assert address.normalize(text) == want


@pytest.mark.parametrize("text", ["03:00", "0000:03:00.8", "0000:03:20.0", "x:03:00.0", "", "03:00.0/"])
def test_malformed(text: str) -> None:
    with pytest.raises(UsageError):
        address.parse(text)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))
def test_round_trip(d: int, b: int, dev: int, f: int) -> None:
    a = address.PciAddress(d, b, dev, f)
    assert address.parse(str(a)) == a
    assert address.PciAddress.from_routing_id(d, a.routing_id) == a


def test_vf_address_routing_rule() -> None:
    # 82576 in the lab: offset 128, stride 2 → VF0 at 01:10.0, VF3 at 01:10.6
    assert address.vf_address("0000:01:00.0", 128, 2, 0) == "0000:01:10.0"
    assert address.vf_address("0000:01:00.0", 128, 2, 3) == "0000:01:10.6"
    # crossing a bus: 255 VFs from 3b:00.0, offset 0x80
    assert address.vf_address("0000:3b:00.0", 0x80, 1, 200) == "0000:3c:09.0"


@given(
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(-2, 0x1_0000),
    st.integers(-2, 0x1_0000), st.integers(-1, 600),
)
def test_vf_address_run_is_vf_addresses_of_0_to_k(
    dom: int, rid: int, offset: int, stride: int, k: int
) -> None:
    """Discovery's run of derived addresses (a prefix per bus) is the per-VF rule's, on any
    bus boundary and stride, and past the last routing ID too (left to the per-VF rule)."""
    pf = f"{dom:04x}:{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7}"
    want = address.vf_addresses(pf, offset, stride, list(range(k))) if k > 0 else []
    assert address.vf_address_run(pf, offset, stride, k) == want


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "x\0y", "", "x" * 256, "../etc"])
def test_check_name_refuses_escapes(bad: str) -> None:
    with pytest.raises(UsageError):
        check_name(bad)


def test_host_path_refuses_dotdot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = open_host(tmp_path)
    with pytest.raises(UsageError):
        h.path("sys/../../etc/passwd")
    assert h.path("sys/bus") == tmp_path / "sys" / "bus"


# the pattern address.parse used before it read addresses without re (its import costs more
# than a typical listing): the reference the hand-written reader must agree with
_PATTERN = (r"^(?:(?P<domain>[0-9a-fA-F]{1,4}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
            r"(?P<dev>[0-9a-fA-F]{1,2})\.(?P<fn>[0-7])$")  # fmt: skip
_PIECES = ["", "0", "00", "000", "0000", "00000", "a", "Ff", "g", "1 ", "\n", "1\n", "\u0663", ":",
           ".", "7", "8", "00.0", "0.7\n"]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=7))
def test_the_reader_agrees_with_the_pattern(pieces: list[str]) -> None:
    import re

    text = "".join(pieces)
    m = re.fullmatch(_PATTERN, text)
    want = None if m is None else (m["domain"] or "", m["bus"], m["dev"], m["fn"])
    assert address._fields(text) == want
    assert address.looks_like_address(text) is (m is not None)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 7),
       st.booleans(), st.booleans())  # fmt: skip
def test_the_reader_agrees_on_addresses(d: int, b: int, dev: int, f: int, dom: bool,
                                        upper: bool) -> None:  # fmt: skip
    import re

    text = (f"{d:x}:" if dom else "") + f"{b:x}:{dev:x}.{f}"
    text = text.upper() if upper else text
    m = re.fullmatch(_PATTERN, text)
    assert address._fields(text) == (None if m is None else (m["domain"] or "", *m.groups()[1:]))


@pytest.mark.parametrize(
    "text",
    ["0000:01:00.0", "ABCD:eF:1f.7", "0000:01:00.8", "0000:0g:00.0", "0000:01:00:0",
     "0000.01:00.0", "000:001:00.0", "0000:01:000.", "0000:01:00.\n", "0000:01:0 .0",
     "00000:1:00.0", "\u0663000:01:00.0", "0000:01:00.07"],
)  # fmt: skip
def test_the_kernels_spelling_read_by_position_agrees_with_the_pattern(text: str) -> None:
    """``dddd:bb:dd.f`` (12 characters) takes a by-position path: the same answers."""
    import re

    m = re.fullmatch(_PATTERN, text)
    want = None if m is None else (m["domain"] or "", m["bus"], m["dev"], m["fn"])
    assert address._fields(text) == want
