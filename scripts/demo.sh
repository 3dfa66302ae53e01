#!/bin/bash
# The main job on the built-in simulated host: look at the host, create VFs, hand two to vfio-pci.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-demo-host}"
V=.venv/bin/vfctl
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
rm -rf "$DIR"
step $V sim init "$DIR" --preset default
export VFCTL_ROOT="$DIR"
step $V list
step $V plan profiles/demo.yaml
step $V apply profiles/demo.yaml
step $V apply profiles/demo.yaml --json
PF=$($V list --json | .venv/bin/python -c 'import json,sys; print(next(p["netdev"] for p in json.load(sys.stdin)["pfs"] if p["total_vfs"] >= 8 and p["netdev"]))')
step $V enable "$PF" 8
step $V show "$PF"
step $V bind "$PF" vf0-1 --driver vfio-pci
step $V enable "$PF" 4 --check
step $V list --all
step $V export "$PF"
printf '\nThe simulated host is in %s: try `vfctl --root %s show %s --json`.\n' "$DIR" "$DIR" "$PF"
