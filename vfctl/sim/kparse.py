"""How the kernel parses what is written to sysfs: kstrto*(), sysfs_streq(), new_id's sscanf.
A value the kernel would refuse is refused here with the same errno (EINVAL, ERANGE)."""

from __future__ import annotations

import errno
import re

from vfctl.sim.common import oserr


def kstrtoull(text: str) -> int:
    """The kernel's kstrtoull(s, 0): optional '+', 0x/0 prefixes, one trailing newline."""
    s = text[1:] if text.startswith("+") else text
    base = 10
    if s.startswith("0"):
        if len(s) > 2 and s[1] in "xX" and s[2] in "0123456789abcdefABCDEF":
            base, s = 16, s[2:]
        else:
            base = 8
    i, val = 0, 0
    overflow = False
    while i < len(s):
        c = s[i].lower()
        if c.isdigit() and c.isascii():
            d = ord(c) - 48
        elif "a" <= c <= "f":
            d = ord(c) - 87
        else:
            break
        if d >= base:
            break
        val = val * base + d
        overflow = overflow or val >= 1 << 64
        i += 1
    if overflow:
        raise oserr(errno.ERANGE, f"{text!r} out of range")
    rest = s[i:]
    if rest.startswith("\n"):
        rest = rest[1:]
    if i == 0 or rest:
        raise oserr(errno.EINVAL, f"invalid number {text!r}")
    return val


def kstrtou16(text: str) -> int:
    v = kstrtoull(text)
    if v > 0xFFFF:
        raise oserr(errno.ERANGE, f"{text!r} out of range")
    return v


def kstrtobool(text: str) -> bool:
    s = text
    if s[:1] in ("y", "Y", "t", "T", "1"):
        return True
    if s[:1] in ("n", "N", "f", "F", "0"):
        return False
    if s[:1] in ("o", "O") and s[1:2] in ("n", "N"):
        return True
    if s[:1] in ("o", "O") and s[1:2] in ("f", "F"):
        return False
    raise oserr(errno.EINVAL, f"invalid boolean {text!r}")


def sysfs_streq(value: str) -> str:
    """The name a bus lookup sees: sysfs_streq ignores one trailing newline."""
    return value[:-1] if value.endswith("\n") else value


def parse_id_fields(value: str) -> list[int]:
    """sscanf("%x %x %x %x %x %x %lx"): fields up to the first that does not parse."""
    out = []
    for tok in value.split()[:7]:
        t = tok[2:] if tok[:2].lower() == "0x" else tok
        m = re.match(r"[0-9a-fA-F]+", t)
        if not m:
            break
        out.append(int(m.group(0), 16))
        if m.end() != len(t):
            break
    return out
