"""VF settings encode as the kernel's structs with the pyroute2 installed here (pip's); the deb
smoke runs the same check with Debian's 0.7.2 (bookworm) and 0.7.7 (trixie)."""

from __future__ import annotations

import struct

from vfctl.host import nlcheck


def test_installed_pyroute2_encodes_vf_settings_as_the_kernel_reads_them() -> None:
    assert nlcheck.problems(nlcheck.encode(3, nlcheck.SAMPLE)) == []
    assert nlcheck.main() == 0


def _with_vlan_payload(data: bytes, payload: bytes) -> bytes:
    """The same message with IFLA_VF_VLAN's payload replaced (lengths fixed up)."""
    out = bytearray(data)
    i = out.find(struct.pack("=HH", 16, 2))  # IFLA_VF_VLAN: len 16, type 2
    assert i > 0
    delta = len(payload) - 12
    out[i : i + 16] = struct.pack("=HH", 4 + len(payload), 2) + payload
    for off in (0, 32, 36):  # nlmsg_len, IFLA_VFINFO_LIST and IFLA_VF_INFO lengths
        fmt = "=I" if off == 0 else "=H"
        (n,) = struct.unpack_from(fmt, out, off)
        struct.pack_into(fmt, out, off, n + delta)
    return bytes(out)


def test_the_check_catches_a_short_or_wrong_vlan() -> None:
    good = nlcheck.encode(3, nlcheck.SAMPLE)
    short = _with_vlan_payload(good, struct.pack("=IIIH", 3, 10, 2, 0x8100))
    assert any("IFLA_VF_VLAN" in p for p in nlcheck.problems(short))
    wrong = _with_vlan_payload(good, struct.pack("=III", 3, 11, 2))
    assert nlcheck.problems(wrong) == ["IFLA_VF_VLAN: vlan=11, want 10"]


def test_qinq_size_is_measured_not_assumed() -> None:
    """pyroute2 up to 0.9.7 encodes IFLA_VF_VLAN_INFO in 14 bytes (kernel struct: 16); the check
    reports what the installed one does, so a fixed pyroute2 stops the note by itself."""
    assert nlcheck.qinq_info_size() in (14, 16)
