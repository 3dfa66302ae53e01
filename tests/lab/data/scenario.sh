#!/bin/bash
# scenario.sh ROOT PF OUT MODE: the differential scenario, run on the lab's real kernel
# (ROOT=/, MODE=real) and on a simulated host started from the committed snapshot (ROOT=that
# copy, MODE=sim). Each step leaves OUT/NAME.{out,err,rc} and the PF's state in OUT/NAME.state.
# Holding /dev/vfio/N open is the only thing done differently: a real process in the guest, a
# fake /proc entry on the simulated host (which scans ROOT/proc).
R=$1 PF=$2 OUT=$3 MODE=$4
HERE=$(cd "$(dirname "$0")" && pwd)
export VFCTL_ROOT=$R VFCTL_BACKEND=none
mkdir -p "$OUT"

state() { sh "$HERE/state.sh" "$R" "$PF" > "$OUT/$1.state"; }
step() {
    local n=$1; shift
    local t0; t0=$(date +%s.%N)
    "$@" > "$OUT/$n.out" 2> "$OUT/$n.err"
    echo $? > "$OUT/$n.rc"
    echo "$t0 $(date +%s.%N)" > "$OUT/$n.time"
    state "$n"
}
group_of() { basename "$(readlink "$R/sys/bus/pci/devices/$PF/virtfn$1/iommu_group")"; }
hold() {
    if [ "$MODE" = real ]; then
        python3 -c 'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR); print("held", flush=True); time.sleep(600)' \
            "/dev/vfio/$1" > "$OUT/holder.out" 2>&1 &
        echo $! > "$OUT/holder.pid"
        for _ in $(seq 100); do grep -q held "$OUT/holder.out" && break; sleep 0.1; done
    else
        mkdir -p "$R/proc/4242/fd" && ln -s "/dev/vfio/$1" "$R/proc/4242/fd/3"
        echo python3 > "$R/proc/4242/comm"
    fi
}
release() {
    if [ "$MODE" = real ]; then kill "$(cat "$OUT/holder.pid")"; wait; else rm -rf "$R/proc/4242"; fi
}
# The kernel's own answers to raw sriov_numvfs writes, through vfctl's Host (real or simulated).
raw() {
    python - "$R" "$PF" "$@" <<'PY'
import errno, sys
from vfctl.host.open import open_host
h, pf = open_host(sys.argv[1]), sys.argv[2]
for v in sys.argv[3:]:
    try:
        h.write(f"sys/bus/pci/devices/{pf}/sriov_numvfs", v)
        print(v, "ok")
    except OSError as e:
        print(v, errno.errorcode[e.errno])
PY
}

state s00
step s01 vfctl enable "$PF" 4 --json
step s02 vfctl bind "$PF" vf0 vf1 --json
hold "$(group_of 1)"
step s03 vfctl enable "$PF" 3 --json
step s04 vfctl disable "$PF" --force --json
release
step s05 vfctl enable "$PF" 3 --json
step s06 raw 2 3 8 -1 abc
step s07 vfctl disable "$PF" --json
step s08 vfctl enable "$PF" 2 --no-autoprobe --json
step s09 vfctl bind "$PF" vf1 --json
