#!/bin/bash
# Debian packages of vfctl, and their proof on clean Debian systems.
#   scripts/deb.sh build            build on this machine (its suite) -> dist/
#   scripts/deb.sh build SUITE      build inside a cached SUITE chroot -> dist/SUITE/
#   scripts/deb.sh test SUITE       build in SUITE, install into a fresh minimal SUITE chroot,
#                                   run vfctl there (scripts/deb-smoke.sh)
# Chroots come from debootstrap with the mirror this machine's own APT uses; they are cached as
# tarballs in $VFCTL_DEB_CACHE (default ~/.cache/vfctl-deb: outside the checkout, so every clone
# on the machine, CI's too, shares them), so only the first run downloads a system.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${VFCTL_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfctl-deb}
BUILD_DEPS="build-essential debhelper dh-python python3-all-dev python3-setuptools python3-typer python3-rich python3-yaml"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { echo "deb: [${SECONDS}s] $*" >&2; }

mirror() {
    # the first deb822 URIs of the machine's Debian sources (never a name written here)
    local f=/etc/apt/sources.list.d/debian.sources uri=""
    [ -r "$f" ] && uri=$(awk 'tolower($1)=="uris:" {print $2; exit}' "$f")
    [ -z "$uri" ] && [ -r /etc/apt/sources.list ] &&
        uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /:\/\//) {print $i; exit}}' /etc/apt/sources.list)
    [ -n "$uri" ] || { log "no Debian mirror found in this machine's APT sources"; exit 1; }
    echo "$uri"
}

source_tree() {
    # the tracked and new files of this checkout, without build products or caches
    local dst=$1 ver
    ver=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' vfctl/__init__.py)
    rm -rf "$dst" && mkdir -p "$dst/vfctl-$ver"
    git ls-files -co --exclude-standard -z | grep -zv -e '^\.lab' -e '^\.cache/' -e '^dist/' -e '^tests/' -e '^benchmarks/' \
        | xargs -0 tar -cf - | tar -xf - -C "$dst/vfctl-$ver"
    echo "$dst/vfctl-$ver"
}

# run: chroot DIR CMD… with /proc and /dev/null usable; mounts are undone on any exit
run_in() {
    local dir=$1; shift
    chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive TERM=dumb "$@"
}

apt_in() {
    local dir=$1; shift
    local cache=$CACHE/apt-$SUITE
    mkdir -p "$cache" "$dir/var/cache/apt/archives"
    cp -n "$cache"/*.deb "$dir/var/cache/apt/archives/" 2>/dev/null || true
    if ! run_in "$dir" apt-get -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io "$@" >"$dir.apt.log" 2>&1; then
        log "apt-get $* failed; refreshing the package lists and retrying"
        run_in "$dir" apt-get -qq update >>"$dir.apt.log" 2>&1
        run_in "$dir" apt-get -q -o Dpkg::Use-Pty=0 "$@" >>"$dir.apt.log" 2>&1 ||
            { tail -20 "$dir.apt.log" >&2; return 1; }
    fi
    cp -n "$dir"/var/cache/apt/archives/*.deb "$cache/" 2>/dev/null || true
}

# a chroot of SUITE with FLAVOR (min | build), extracted fresh from its cached tarball
chroot_for() {
    local flavor=$1 dir=$2
    local tarball=$CACHE/$SUITE-$flavor.tar
    if [ ! -f "$tarball" ]; then
        if [ "$flavor" = build ]; then
            chroot_for min "$dir"
            # shellcheck disable=SC2086
            apt_in "$dir" install -y --no-install-recommends $BUILD_DEPS
        else
            log "debootstrap $SUITE (first run only; cached in $tarball)"
            rm -rf "$dir" && mkdir -p "$CACHE"
            debootstrap --variant=minbase "$SUITE" "$dir" "$(mirror)" >"$CACHE/$SUITE.debootstrap.log" 2>&1 ||
                { tail -20 "$CACHE/$SUITE.debootstrap.log" >&2; exit 1; }
            run_in "$dir" apt-get -qq update
            # `man -w` needs the pages, not mandb's index: skip rebuilding it on every install
            echo "man-db man-db/auto-update boolean false" | run_in "$dir" debconf-set-selections
            rm -f "$dir/var/lib/man-db/auto-update"
        fi
        run_in "$dir" apt-get -qq clean
        tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        return
    fi
    rm -rf "$dir" && mkdir -p "$dir" && tar -C "$dir" -xf "$tarball"
}

build_here() {
    local out=$1 work src
    work=$(mktemp -d "${TMPDIR:-/tmp}/vfctl-deb.XXXXXX")
    src=$(source_tree "$work")
    (cd "$src" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) ||
        { tail -40 "$work/build.log" >&2; exit 1; }
    mkdir -p "$out" && rm -f "$out"/vfctl_*.deb && mv "$work"/vfctl_*.deb "$out/"
    rm -rf "$work"
    ls "$out"/vfctl_*.deb
}

build_in_chroot() {
    local out=$1 dir=$CACHE/build-$SUITE src
    # the build chroot need not be pristine: kept extracted, re-made when its tarball changes
    if [ ! -f "$dir/.from-tarball" ] || [ "$CACHE/$SUITE-build.tar" -nt "$dir/.from-tarball" ]; then
        chroot_for build "$dir" && touch "$dir/.from-tarball"
    fi
    log "$SUITE build chroot ready"
    src=$(source_tree "$dir/src")
    run_in "$dir" sh -c "cd /src/$(basename "$src") && dpkg-buildpackage -b -us -uc" \
        >"$dir.build.log" 2>&1 || { tail -40 "$dir.build.log" >&2; exit 1; }
    mkdir -p "$out" && rm -f "$out"/vfctl_*.deb && cp "$dir"/src/vfctl_*.deb "$out/"
    rm -rf "$dir/src"
    ls "$out"/vfctl_*.deb
}

cmd=${1:-build}
SUITE=${2:-}
WORK=${VFCTL_DEB_WORK:-$CACHE/work-${SUITE:-host}}
if [ -n "$SUITE" ]; then
    # clones share the cache: one run per suite at a time (the build chroot is reused)
    mkdir -p "$CACHE" && exec 9>"$CACHE/$SUITE.lock" && flock 9
fi
case $cmd in
build)
    if [ -z "$SUITE" ]; then
        build_here "$REPO/dist"
    else
        build_in_chroot "$REPO/dist/$SUITE"
    fi
    ;;
test)
    [ -n "$SUITE" ] || { log "usage: $0 test SUITE"; exit 2; }
    deb=$(build_in_chroot "$REPO/dist/$SUITE")
    log "built $deb"
    dir=$WORK/run-$SUITE
    chroot_for min "$dir"
    cp "$deb" "$dir/tmp/" && cp scripts/deb-smoke.sh "$dir/tmp/"
    apt_in "$dir" install -y --no-install-recommends "./tmp/$(basename "$deb")" man-db bash-completion
    log "installed into a fresh $SUITE chroot, with its dependencies from Debian"
    run_in "$dir" bash /tmp/deb-smoke.sh
    rm -rf "$dir"
    ;;
*)
    log "usage: $0 build [SUITE] | test SUITE"; exit 2 ;;
esac
