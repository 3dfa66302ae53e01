"""Run inside an ASan/UBSan-preloaded interpreter: hammer the sanitized extension.

Usage: python asan_driver.py EXTENSION.so WORKDIR CASES.  Exits non-zero on any mismatch
with the Python oracle; the sanitizers abort the process on memory or UB errors.
"""

from __future__ import annotations

import os
import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))  # tests/: the shared asan helper

from asan import load
from pcitools import CORPUS, corpus_bytes, repeated_caps

from vfctl.pci import configspace as py


def main() -> int:
    so, work, cases = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    ext = load(so, "vfctl.pci._configspace")
    rng = random.Random(20240501)
    corpus = [corpus_bytes(n) for n in CORPUS]
    blobs: list[bytes] = []
    for base in corpus:
        blobs += [base[:64], base[:256], base]
    blobs += [repeated_caps(s, e) for s in (0, 1, 4) for e in (1, 13, 14)]  # > 16 errors
    for i in range(cases):
        kind = i % 3
        if kind == 0:
            b = bytearray(rng.randbytes(rng.choice([64, 256, 4096])))
        else:
            b = bytearray(rng.choice(corpus))
            for _ in range(rng.randint(1, 8)):
                b[
                    rng.choice(
                        [rng.randrange(0x40), rng.randrange(0x40, 0x200), rng.randrange(4096)]
                    )
                ] = rng.randrange(256)
            if kind == 2:  # force a loop or an out-of-range pointer somewhere
                b[0x34] = rng.choice([0x40, 0xFC, 0x3C, 0xA0])
                struct.pack_into(
                    "<I", b, 0x100, 0x10 | rng.choice([0x100, 0xFFC, 0x0F8, 0xFC0]) << 20
                )
            b = b[: rng.choice([64, 200, 256, 4096, 4094])]
        blobs.append(bytes(b))
    bad = 0
    for b in blobs:
        if len(b) < 64:
            continue
        if ext.parse(b) != py.parse(b):
            bad += 1
    paths = []
    for i, b in enumerate(blobs[:600]):
        p = work / f"{i}.config"
        p.write_bytes(b)
        paths.append(str(p))
    paths.append(str(work / "missing"))
    fifo = work / "fifo.config"
    os.mkfifo(fifo)  # O_NONBLOCK open, then refused as not a regular file
    paths += [str(fifo), str(work)]
    if ext.parse_files(paths) != py.parse_files_python(paths):
        bad += 1
    print(f"asan-driver: {len(blobs)} cases, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
