#!/usr/bin/env bash
# Prepare the real-kernel lab: QEMU >= 8 (for igb SR-IOV), a Debian kernel extracted into
# .lab/kernel (never installed as the host kernel) and a tiny busybox initramfs.
# Idempotent: when everything is in place a second run only checks and exits.
# Env: LAB_REFRESH=1 re-resolves and re-downloads the kernel.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB="$REPO/.lab"
APT=(apt-get -o DPkg::Lock::Timeout=900 -q)
BPO_SUITE=bookworm-backports
BPO_FILE=/etc/apt/sources.list.d/vfctl-lab-backports.sources
SELF_SUM=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

die() { echo "lab-deps: error: $*" >&2; exit 1; }
log() { echo "lab-deps: $*" >&2; }

qemu_major() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo 0; return; }
    qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p' | head -n1
}

host_tools_ok() {
    [ "$(qemu_major)" -ge 8 ] || return 1
    command -v qemu-img >/dev/null && [ -x /bin/busybox ] && command -v cpio >/dev/null \
        && command -v depmod >/dev/null && command -v xz >/dev/null \
        && command -v lspci >/dev/null && command -v ip >/dev/null
}

lab_ready() {
    [ -f "$LAB/ready" ] && [ "$(cat "$LAB/ready")" = "$SELF_SUM" ] || return 1
    local kver
    kver=$(cat "$LAB/kernel-version" 2>/dev/null) || return 1
    [ -f "$LAB/kernel/boot/vmlinuz-$kver" ] && [ -f "$LAB/initramfs.cpio.gz" ]
}

have_backports_source() {
    grep -rqsE -- "^[^#]*[[:space:]]$BPO_SUITE([[:space:]]|\$)" \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

# The deb822 stanza of FILE whose Suites has bookworm, with the backports suite instead
# (same URIs, Components, Signed-By): the mirror comes from the machine, never from this repo.
backports_stanza() {
    local stanza
    stanza=$(awk -v suite="$BPO_SUITE" '
        BEGIN { RS = ""; FS = "\n" }
        {
            ok = 0; types = 0; out = ""
            for (i = 1; i <= NF; i++) {
                line = $i
                if (line ~ /^#/) continue
                if (line ~ /^Suites:/) {
                    n = split(substr(line, 8), s, /[ \t]+/)
                    for (j = 1; j <= n; j++) if (s[j] == "bookworm") ok = 1
                    line = "Suites: " suite
                }
                if (line ~ /^Types:/ && line ~ /(^|[ \t])deb([ \t]|$)/) types = 1
                if (line ~ /^Types:/) line = "Types: deb"
                out = out line "\n"
            }
            if (ok && types) { printf "%s", out; exit }
        }' "$1")
    [ -n "$stanza" ] || die "no 'Suites: bookworm' stanza in $1 to copy for $BPO_SUITE"
    printf '%s\n' "$stanza"
}

add_backports_source() {
    local src=/etc/apt/sources.list.d/debian.sources stanza
    if [ -f "$src" ]; then
        stanza=$(backports_stanza "$src") || exit 1
        printf '# Added by vfctl scripts/lab-deps.sh (QEMU >= 8 for the lab)\n%s\n' "$stanza" \
            > "$BPO_FILE"
    else
        local line
        line=$(grep -hE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+bookworm[[:space:]]' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1) \
            || die "no bookworm apt source found to copy for $BPO_SUITE"
        BPO_FILE=/etc/apt/sources.list.d/vfctl-lab-backports.list
        echo "$line" | sed -E 's/^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+)bookworm([[:space:]])/\1'"$BPO_SUITE"'\3/' \
            > "$BPO_FILE"
    fi
    log "added $BPO_SUITE source in $BPO_FILE"
}

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return
    log "apt-get update"
    "${APT[@]}" update >/dev/null || die "apt-get update failed"
    apt_updated=1
}

install_host_tools() {
    [ "$(id -u)" = 0 ] || die "QEMU >= 8 and the lab tools are missing; run as root: scripts/lab-deps.sh"
    have_backports_source || add_backports_source
    apt_update
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends \
        -t "$BPO_SUITE" qemu-system-x86 qemu-utils >/dev/null \
        || die "apt-get install -t $BPO_SUITE qemu-system-x86 qemu-utils failed"
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends \
        busybox-static cpio pciutils iproute2 kmod xz-utils >/dev/null \
        || die "apt-get install of the lab tools failed"
    host_tools_ok || die "QEMU >= 8 still missing after install (got major $(qemu_major))"
}

# The generic image the linux-image-amd64 metapackage points at (backports first).
resolve_kernel_pkg() {
    local suite pkg
    for suite in "$BPO_SUITE" bookworm; do
        pkg=$(apt-cache depends -t "$suite" linux-image-amd64 2>/dev/null \
            | sed -n 's/^ *Depends: <\{0,1\}\(linux-image-[0-9][^ >]*-amd64\)>\{0,1\}$/\1/p' \
            | grep -v -- '-cloud-' | head -n1 || true)
        if [ -n "$pkg" ]; then echo "$pkg"; return; fi
    done
    return 1
}

download_kernel() {
    local pkg
    pkg=$(resolve_kernel_pkg) || return 1
    log "kernel package $pkg"
    rm -f "$LAB"/linux-image-*.deb
    (cd "$LAB" && "${APT[@]}" download "$pkg" >/dev/null 2>&1) || return 1
    echo "$pkg"
}

fetch_kernel() {
    local pkg kver deb
    # Stale lists can name a kernel the mirror no longer has: refresh once and retry.
    pkg=$(download_kernel) || { apt_update; pkg=$(download_kernel); } \
        || die "cannot resolve or apt-get download the kernel of linux-image-amd64"
    kver=${pkg#linux-image-}
    rm -rf "$LAB/kernel"
    mkdir -p "$LAB/kernel"
    deb=$(ls "$LAB"/"$pkg"_*.deb | head -n1)
    dpkg -x "$deb" "$LAB/kernel" || die "dpkg -x $deb failed"
    rm -f "$deb"
    [ -f "$LAB/kernel/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $deb"
    local moddir
    moddir=$(modules_dir "$kver") || die "no modules/$kver in $deb"
    depmod -b "${moddir%/lib/modules/$kver}" "$kver" || die "depmod for $kver failed"
    echo "$kver" > "$LAB/kernel-version"
}

modules_dir() {
    local d
    for d in "$LAB/kernel/lib/modules/$1" "$LAB/kernel/usr/lib/modules/$1"; do
        [ -d "$d" ] && { echo "$d"; return; }
    done
    return 1
}

# /init: host / over 9p as a copy-on-write root (writes land in guest RAM), proc/sys/dev,
# tmpfs /tmp and /run, the boot's work share at /run/lab, the extracted modules at
# /usr/lib/modules/KVER; then hands PID 1 to the runner's agent in the work share.
write_init() {
    cat > "$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "lab-init: $*"; echo o > /proc/sysrq-trigger; sleep 5; exit 1; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/mod/$m" || echo "lab-init: insmod $m failed"; done < /mod/order
for a in $(cat /proc/cmdline); do case "$a" in lab*=*) eval "${a%%=*}='${a#*=}'";; esac; done
[ -n "$labkver" ] && [ -n "$labkdir" ] || fail "labkver/labkdir missing from the kernel cmdline"
O="trans=virtio,version=9p2000.L,msize=${labmsize:-512000}"
mkdir -p /host /rw /newroot
mount -t 9p -o "$O,ro,cache=${labcache:-loose}" hostroot /host || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fail "mount overlay root"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=0755 tmpfs $R/run
mkdir -p $R/run/lock $R/run/lab
chmod 1777 $R/run/lock
mount -t 9p -o "$O,cache=none" work $R/run/lab || fail "mount work share"
# the repository (its .venv and tests) where the host has it, even under the guest's tmpfs
if [ -n "$labrepo" ] && [ ! -d "$R$labrepo/vfctl" ]; then
    mkdir -p "$R$labrepo" && mount --bind "/host$labrepo" "$R$labrepo" || fail "bind repo"
fi
[ -d "$R/sys/kernel/debug" ] && mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mkdir -p "$R/usr/lib/modules/$labkver"
mount --bind "/host$labkdir" "$R/usr/lib/modules/$labkver" || fail "bind modules"
ip link set lo up
[ -f $R/run/lab/agent.sh ] || fail "no agent.sh in the work share"
exec switch_root $R /bin/sh /run/lab/agent.sh
EOF
    chmod 755 "$1"
}

build_initramfs() {
    local kver moddir tmp
    kver=$(cat "$LAB/kernel-version")
    moddir=$(modules_dir "$kver") || die "no modules for $kver"
    tmp=$(mktemp -d)
    mkdir -p "$tmp"/{bin,mod,proc,sys,dev}
    cp /bin/busybox "$tmp/bin/busybox"
    write_init "$tmp/init"
    : > "$tmp/mod/order"
    # The modules /init needs, dependencies first; busybox insmod cannot read .ko.xz.
    local line path name
    while read -r line; do
        case "$line" in insmod\ *) ;; *) continue ;; esac
        path=${line#insmod }
        path=${path%% *}
        name=$(basename "$path")
        name=${name%.xz}
        name=${name%.zst}
        grep -qx "$name" "$tmp/mod/order" && continue
        case "$path" in
            *.xz) xz -dc "$path" > "$tmp/mod/$name" ;;
            *.zst) zstd -dcq "$path" > "$tmp/mod/$name" ;;
            *) cp "$path" "$tmp/mod/$name" ;;
        esac
        echo "$name" >> "$tmp/mod/order"
    done < <(modprobe -d "${moddir%/lib/modules/$kver}" -S "$kver" --show-depends -a \
        virtio_pci virtio_console 9pnet_virtio 9p overlay 2>/dev/null)
    grep -qx 9p.ko "$tmp/mod/order" || die "9p module not found for $kver"
    (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) > "$LAB/initramfs.cpio.gz.new"
    mv "$LAB/initramfs.cpio.gz.new" "$LAB/initramfs.cpio.gz"
    log "initramfs modules: $(tr '\n' ' ' < "$tmp/mod/order")"
    rm -rf "$tmp"
}

main() {
    local t0=$SECONDS
    if [ "${LAB_REFRESH:-0}" != 1 ] && host_tools_ok && lab_ready; then
        log "lab ready (kernel $(cat "$LAB/kernel-version"), QEMU $(qemu_major).x)"
        return 0
    fi
    mkdir -p "$LAB"
    host_tools_ok || install_host_tools
    local kver
    kver=$(cat "$LAB/kernel-version" 2>/dev/null || true)
    if [ "${LAB_REFRESH:-0}" = 1 ] || [ -z "$kver" ] || [ ! -f "$LAB/kernel/boot/vmlinuz-$kver" ] \
        || ! modules_dir "$kver" >/dev/null; then
        [ "$(id -u)" = 0 ] || log "not root: trying apt-get download anyway"
        fetch_kernel
    fi
    build_initramfs
    echo "$SELF_SUM" > "$LAB/ready"
    log "lab ready (kernel $(cat "$LAB/kernel-version"), QEMU $(qemu_major).x) in $((SECONDS - t0)) s"
}

if [ "${1:-}" = --print-backports-source ]; then
    backports_stanza "${2:?usage: $0 --print-backports-source DEBIAN.SOURCES}"
    exit 0
fi
main "$@"
