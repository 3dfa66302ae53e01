#!/bin/bash
# Run inside a clean chroot where the vfctl deb was just installed (scripts/deb.sh test).
# Each check prints "ok: …"; the first failure stops the run with a non-zero exit.
set -euo pipefail
ok() { echo "ok: $*"; }
vfctl --version | grep -q '^vfctl [0-9]' && ok "vfctl --version: $(vfctl --version)"
python3 -c 'from vfctl.pci import configspace as c; assert c.HAVE_C, "C parser not loaded"' &&
    ok "C config-space parser loads on $(python3 -V)"
ok "$(python3 -m vfctl.host.nlcheck)"
vfctl sim init /tmp/h >/dev/null && ok "vfctl sim init /tmp/h"
n=$(vfctl --root /tmp/h list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["pfs"]))')
[ "$n" -gt 0 ] && ok "list --json: $n PFs"
ex=/usr/share/vfctl/profiles/sim-default.yaml
vfctl --root /tmp/h --backend none apply --json "$ex" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["changed"] and d["error"] is None, d' &&
    ok "apply $ex"
vfctl --root /tmp/h --backend none apply --json "$ex" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d["changed"], d' &&
    ok "second apply: nothing to do"
[ -f /usr/share/vfctl/profiles/schema.json ] && ok "schema shipped"
man -w vfctl >/dev/null && man -w vfctl-apply >/dev/null && ok "man -w vfctl: $(man -w vfctl)"
[ -f /usr/lib/systemd/system/vfctl.service ] && [ ! -e /etc/systemd/system/multi-user.target.wants/vfctl.service ] &&
    ok "unit shipped, not enabled by installing"
complete_line() {
    # what bash completion offers for the words of $1 (the last one may be empty)
    bash -c 'source /usr/share/bash-completion/bash_completion
             source /usr/share/bash-completion/completions/vfctl
             COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<<"$COMP_LINE"
             [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
             COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _vfctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$1"
}
[ "$(complete_line 'vfctl en')" = enable ] && ok "bash: vfctl en<TAB> -> enable"
pfs=$(complete_line 'vfctl --root /tmp/h show enp1')
echo "$pfs" | grep -qx enp1s0f0 && ok "bash: vfctl --root /tmp/h show enp1<TAB> -> $(echo $pfs)"
vfs=$(complete_line 'vfctl --root /tmp/h set enp1s0f0 ')
echo "$vfs" | grep -qx vf3 && ok "bash: set enp1s0f0 <TAB> -> $(echo $vfs)"
echo "deb-smoke: all checks passed"
