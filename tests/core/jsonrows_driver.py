"""Run the JSON rows' C extension (a given .so, possibly sanitized) against its Python twin and
json.dumps over random columns, escapes, big ints, refusals and a 16,384-row document.

Usage: python jsonrows_driver.py EXTENSION.so ROUNDS.  Prints "N mismatches"; exits 1 on any.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: the shared asan helper

from asan import load

from vfctl import jsonrows

ODD = ["", 'q"', "b\\", "n\n", "\x00\x1f\x7f", "\u00e9", "\U0001f600", "\udcff", "%s"]


def value(rng: random.Random) -> object:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randrange(-(2**90), 2**90) >> rng.randrange(90)
    if kind == 2:
        return rng.choice(ODD)
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(40)))
    return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(8))).replace(
        "\ud800", "x"
    )


class Obj:
    def __init__(self, a: object, inner: object = None) -> None:
        self.a, self.inner = a, inner


def outcome(f: object, *args: object) -> object:
    try:
        return f(*args)  # type: ignore[operator]
    except (TypeError, ValueError, OverflowError, AttributeError) as e:
        return type(e)


def main() -> int:
    so, rounds = sys.argv[1], int(sys.argv[2])
    ext = load(so, "vfctl._jsonrows")
    rng = random.Random(20261130)
    bad = 0
    for _ in range(rounds):
        k, n = rng.randrange(5), rng.randrange(8)
        pieces = tuple("".join(chr(rng.randrange(128)) for _ in range(rng.randrange(6)))
                       for _ in range(k + 1))  # fmt: skip
        cols = tuple([value(rng) for _ in range(n)] for _ in range(k))
        raw = rng.randrange(1 << k) if rng.random() < 0.2 else 0
        if rng.random() < 0.05 and cols:
            cols[0].append(1.5)  # refused (and a length mismatch when k > 1)
        c, p = outcome(ext.rows, pieces, cols, raw), outcome(jsonrows.rows_python, pieces, cols, raw)
        if c != p:
            bad += 1
        elif isinstance(c, str) and not raw:
            rows = [pieces[0] + "".join(json.dumps(col[i]) + pieces[j + 1]
                                        for j, col in enumerate(cols)) for i in range(n)]  # fmt: skip
            bad += c != (", ".join(rows) if k else "")
    for _ in range(rounds // 10):  # attribute and path columns read from objects
        n = rng.randrange(6)
        objs = [Obj(value(rng), Obj(value(rng)) if rng.random() < 0.9 else None) for _ in range(n)]
        cols = ("a", ("inner", "a"), [value(rng) for _ in range(n)])
        seq = objs if rng.random() < 0.5 else tuple(objs)
        pieces = ("[", ",", ",", "]")
        bad += outcome(ext.rows, pieces, cols, 0, seq) != outcome(
            jsonrows.rows_python, pieces, cols, 0, seq
        )
    for _ in range(rounds // 10):  # objects from columns: equal dicts, or the same error
        k, n = rng.randrange(4), rng.randrange(6)
        names = tuple(f"f{j}" for j in range(k))
        if k and rng.random() < 0.2:  # a key twice: its first place, its last value
            names, k = (*names, names[0]), k + 1
        cols = tuple([value(rng) for _ in range(n)] if rng.random() < 0.7 else value(rng)
                     for _ in range(k))  # fmt: skip
        if rng.random() < 0.1 and k and type(cols[0]) is list:
            cols[0].append(1)  # a length mismatch when another column is a list
        c, p = outcome(ext.objects, Obj, names, cols), outcome(jsonrows.objects_python, Obj, names, cols)
        same = [list(vars(o).items()) for o in c] == [list(vars(o).items()) for o in p] \
            if isinstance(c, list) and isinstance(p, list) else c == p  # fmt: skip
        bad += not same
    keys = ('{"i": ', ', "a": ', ', "g": ', "}")
    big = (list(range(16384)), [f"0000:{i >> 7:02x}:{i & 127:02x}.0" for i in range(16384)],
           [None] * 16384)  # fmt: skip
    bad += ext.rows(keys, big, 0) != jsonrows.rows_python(keys, big, 0)
    print(f"{bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
