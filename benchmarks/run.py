"""`make bench`: every benchmark, each reporting ratios against a baseline measured in the same run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

rc = 0
for script in ("bench_configspace.py", "bench_list.py", "bench_apply.py", "bench_lab_reads.py",
               "bench_lab_list.py"):
    rc |= subprocess.run([sys.executable, str(HERE / script)], check=False).returncode
sys.exit(rc)
