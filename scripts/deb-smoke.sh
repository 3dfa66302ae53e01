#!/bin/bash
# Run inside a clean chroot where the vfctl deb was just installed (scripts/deb.sh test).
# Each check prints "ok: …"; the first failure prints "FAIL: …" and exits 1.
set -euo pipefail
ok() { echo "ok: $*"; }
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else echo "FAIL: $what"; exit 1; fi
}
json() { python3 -c "import json, sys; d = json.load(sys.stdin); assert $1, d"; }
r=/tmp/h
ex=/usr/share/vfctl/profiles/sim-default.yaml

version() { local v; v=$(vfctl --version); grep -q '^vfctl [0-9]' <<<"$v"; }
check "vfctl --version: $(vfctl --version)" version
cparser() { python3 -c 'from vfctl.pci import configspace as c; assert c.HAVE_C'; }
check "C config-space parser loads on $(python3 -V)" cparser
nl=$(python3 -m vfctl.host.nlcheck) || { echo "FAIL: $nl"; exit 1; }
ok "$nl"
check "vfctl sim init $r" vfctl sim init $r
listed() { vfctl --root $r list --json | json 'len(d["pfs"]) == 4'; }
check "vfctl --root $r list --json: 4 PFs" listed
table() { vfctl --root $r list -a >/tmp/list.txt && grep -q "SR-IOV physical functions" /tmp/list.txt; }
check "vfctl --root $r list -a: the rich table" table
applied() { vfctl --root $r apply --json "$ex" | json 'd["changed"] and d["error"] is None'; }
check "vfctl --root $r apply $ex" applied
again() { vfctl --root $r apply --json "$ex" | json 'not d["changed"]'; }
check "second apply: nothing to do" again

helps() {
    # every command parses its options under this suite's typer/click (bookworm: typer 0.7.0)
    local page words
    for page in /usr/share/man/man8/vfctl-*.8.gz; do
        words=$(basename "$page" .8.gz | cut -d- -f2- | tr - ' ')
        # shellcheck disable=SC2086
        vfctl $words --help >/dev/null || { echo "vfctl $words --help failed"; return 1; }
    done
}
check "--help of every command that has a man page" helps
imperative() {
    vfctl --root $r enable enp2s0f1 2 >/dev/null &&
        vfctl --root $r set enp2s0f1 vf1 --mac auto --vlan 7 --trust on --spoofchk off >/dev/null &&
        vfctl --root $r bind enp2s0f1 vf0 >/dev/null &&
        vfctl --root $r show enp2s0f1 --json |
        json 'd["vfs"][0]["driver"] == "vfio-pci" and (d["vfs"][1]["vlan"], d["vfs"][1]["trust"], d["vfs"][1]["spoofchk"]) == (7, True, False)' &&
        vfctl --root $r show enp2s0f1 >/tmp/show.txt && grep -q "spoof-check" /tmp/show.txt &&
        vfctl --root $r unbind enp2s0f1 vf0 >/dev/null &&
        vfctl --root $r disable enp2s0f1 >/dev/null
}
check "enable, set, bind, show, unbind, disable on the simulated host" imperative
roundtrip() { vfctl --root $r export >/tmp/export.yaml && vfctl --root $r plan /tmp/export.yaml >/tmp/plan.txt && grep -q "nothing to do" /tmp/plan.txt; }
check "export | plan: nothing to do" roundtrip
persist_check() { vfctl --root $r persist enable --check --json "$ex" | json 'd["changed"]'; }
check "persist enable --check" persist_check
bad() { local rc=0; vfctl --root $r decode /dev/null 2>/dev/null || rc=$?; [ $rc -eq 2 ]; }
check "bad input: exit 2" bad

check "schema and examples shipped" test -f /usr/share/vfctl/profiles/schema.json
manw() { man -w vfctl >/dev/null && man -w vfctl-apply >/dev/null; }
check "man -w vfctl: $(man -w vfctl 2>/dev/null)" manw
unit() { [ -f /usr/lib/systemd/system/vfctl.service ] && [ ! -e /etc/systemd/system/multi-user.target.wants/vfctl.service ]; }
check "unit shipped, not enabled by installing" unit
enabled() {
    # this chroot is thrown away: enable for real on its / (no systemd runs here, so no systemctl)
    local w=/etc/systemd/system/multi-user.target.wants/vfctl.service
    vfctl persist enable --json "$ex" | json 'd["changed"] and d["unit"] == "/usr/lib/systemd/system/vfctl.service"' &&
        [ "$(readlink $w)" = /usr/lib/systemd/system/vfctl.service ] && [ ! -e /etc/systemd/system/vfctl.service ] &&
        vfctl persist disable --json | json 'd["changed"]' && [ ! -L $w ] && [ -f /usr/lib/systemd/system/vfctl.service ]
}
check "persist enable links the packaged unit; disable unlinks it" enabled

complete_line() {
    # what bash completion offers for the words of $1 (the last one may be empty)
    bash -c 'source /usr/share/bash-completion/bash_completion
             source /usr/share/bash-completion/completions/vfctl
             COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<<"$COMP_LINE"
             [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
             COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _vfctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$1"
}
en() { [ "$(complete_line 'vfctl en')" = enable ]; }
check "bash: vfctl en<TAB> -> enable" en
# (candidates captured first: `grep -q` closing the pipe early would fail it under pipefail)
pfname() { local c; c=$(complete_line "vfctl --root $r show enp1"); grep -qx enp1s0f0 <<<"$c"; }
check "bash: vfctl --root $r show enp1<TAB> -> $(complete_line "vfctl --root $r show enp1" | xargs)" pfname
vfid() { local c; c=$(complete_line "vfctl --root $r set enp1s0f0 "); grep -qx vf3 <<<"$c"; }
check "bash: set enp1s0f0 <TAB> -> $(complete_line "vfctl --root $r set enp1s0f0 " | xargs)" vfid
echo "deb-smoke: all checks passed"
