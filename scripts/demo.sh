#!/bin/bash
# The whole job on the built-in simulated host: look at it, converge it from a profile, then put a
# VF into a libvirt domain through a real libvirtd that this script starts and always stops.
# Everything lives under DIR (default demo-host): the simulated host (DIR/host), the daemon's
# sockets, config and state (DIR/libvirtd, bind-mounted in a private mount namespace by
# tests/libvirt/libvirtd.py, the same harness the tests use) and its QEMU capability cache.
# As root, missing Debian packages for libvirt are installed first (deps/apt-libvirt.txt,
# deps/apt-demo.txt); without root or libvirt the libvirt part is skipped, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIR="${1:-demo-host}"
export PATH="$REPO/.venv/bin:$PATH"
unset VFCTL_LIBVIRT_URI VFCTL_BACKEND LIBVIRT_DEFAULT_URI

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
say() { printf '\n%s\n' "$*"; }
step() { printf '\n%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }
shell() { printf '\n%s$ %s%s\n' "$B" "$1" "$N"; bash -o pipefail -c "$1"; }
refused() {  # refused CODE CMD...: the command must fail with exactly CODE
    local want=$1 rc=0
    shift
    printf '\n%s$ %s%s\n' "$B" "$*" "$N"
    "$@" || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "demo: expected exit $want from \`$*\`, got $rc" >&2
        exit 1
    fi
    echo "(exit $rc: refused)"
}

# ---- the daemon: started in the background, stopped on any exit (error, Ctrl-C, TERM) --------
DAEMON_PID=""
stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    say "libvirtd stopped: nothing of the demo is left running."
}
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

start_daemon() {  # sets URI, or returns 1 with the reason on stderr
    local d="$DIR/libvirtd"
    python tests/libvirt/libvirtd.py "$d" --cache "$DIR/qemu-cache" --no-host-dirs \
        --with-parent >"$DIR/libvirtd.uri" 2>"$DIR/libvirtd.err" </dev/null &
    DAEMON_PID=$!
    while [ ! -s "$DIR/libvirtd.uri" ]; do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID" 2>/dev/null || true
            DAEMON_PID=""
            cat "$DIR/libvirtd.err" >&2
            return 1
        fi
        sleep 0.05
    done
    URI=$(cat "$DIR/libvirtd.uri")
}

define_vm() {  # a stopped TCG q35 guest without disk: enough to hold a <hostdev>
    cat >"$DIR/$1.xml" <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
</domain>
EOF
    step virsh define "$DIR/$1.xml"
}

if [ -n "$(ls -A "$DIR" 2>/dev/null)" ] && [ ! -e "$DIR/.vfctl-demo" ] && [ ! -d "$DIR/.vfctl-sim" ]
then  # everything in DIR but the QEMU cache is replaced: never someone else's directory
    echo "demo: $DIR is not empty and not an earlier demo's directory; choose another" >&2
    exit 2
fi

# ---- what this machine can do ----------------------------------------------------------------
skip=""  # why the VM part cannot run here
if [ "$(id -u)" = 0 ]; then
    scripts/install-deps.sh deps/apt-libvirt.txt deps/apt-demo.txt \
        || skip="the libvirt packages could not be installed (above)"
    if [ -z "$skip" ] && ! python -c 'import libvirt' 2>/dev/null; then
        echo "demo: installing libvirt-python into .venv"
        scripts/install-venv.sh libvirt || skip="libvirt-python could not be installed (above)"
    fi
fi
if [ -z "$skip" ]; then
    why=$(python tests/libvirt/libvirtd.py --check "$DIR/libvirtd") || skip=$why
fi
if [ -z "$skip" ] && ! python -c 'import libvirt' 2>/dev/null; then
    skip="libvirt-python is not installed in .venv"
fi

mkdir -p "$DIR"
exec 9>>"$DIR/.vfctl-demo"  # the marker doubles as the lock: one demo per directory at a time
if ! flock -n 9; then
    echo "demo: another demo runs in $DIR" >&2
    exit 1
fi
old=$(cat "$DIR/libvirtd/libvirtd.pid" 2>/dev/null || true)
if [ -n "$old" ] && grep -qF "$(cd "$DIR" && pwd)/" "/proc/$old/cmdline" 2>/dev/null; then
    echo "demo: a libvirtd of an earlier demo still runs (pid $old); stop it first" >&2
    exit 1
fi
find "$DIR" -mindepth 1 -maxdepth 1 ! -name qemu-cache ! -name .vfctl-demo -exec rm -rf {} +
HOST="$DIR/host"
PF=enp1s0f0  # the first 82599 port of the default preset

# ---- the host ----------------------------------------------------------------------------------
step vfctl sim init "$HOST" --preset default
step export VFCTL_ROOT="$HOST"
step vfctl list
step vfctl plan profiles/demo.yaml
step vfctl apply profiles/demo.yaml
step vfctl apply profiles/demo.yaml
step vfctl enable $PF 4 --check

# ---- a VM ----------------------------------------------------------------------------------------
if [ -n "$skip" ]; then
    step vfctl show $PF
    say "Skipped the libvirt part (attach, detach, a profile with attach:): $skip."
    [ "$(id -u)" = 0 ] || say "As root, \`make demo\` installs what libvirt needs and runs it too."
    say "The simulated host is in $HOST: try \`vfctl --root $HOST show $PF --json\`."
    exit 0
fi
say "Starting an isolated libvirtd: sockets, config and state in $DIR/libvirtd ..."
start_daemon || { echo "demo: the isolated libvirtd did not start (above)" >&2; exit 1; }
step export VFCTL_LIBVIRT_URI="$URI"
step export LIBVIRT_DEFAULT_URI="$URI"  # for virsh
define_vm vm101
define_vm vm102
step vfctl attach vm101 $PF vf3
step vfctl show $PF
shell "virsh dumpxml vm101 | sed -n '/<hostdev/,/<\/hostdev>/p'"
refused 4 vfctl attach vm102 $PF vf3
refused 4 vfctl disable $PF
step vfctl detach vm101 $PF vf3
step cat profiles/demo-attach.yaml
step vfctl apply profiles/demo-attach.yaml
step vfctl apply profiles/demo-attach.yaml
stop_daemon
say "The simulated host is in $HOST: try \`vfctl --root $HOST show $PF --json\`."
