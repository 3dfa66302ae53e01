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
# every command parses its options under this suite's typer/click (bookworm: typer 0.7.0)
for page in /usr/share/man/man8/vfctl-*.8.gz; do
    words=$(basename "$page" .8.gz | cut -d- -f2- | tr - ' ')
    # shellcheck disable=SC2086
    vfctl $words --help >/dev/null 2>&1 || { vfctl $words --help; exit 1; }
done
ok "--help of every command that has a man page"
r=/tmp/h
vfctl --root $r --backend none enable enp2s0f1 2 >/dev/null &&
    vfctl --root $r --backend none set enp2s0f1 vf1 --mac auto --vlan 7 --trust on --max-tx-rate 100 >/dev/null &&
    vfctl --root $r --backend none bind enp2s0f1 vf0 >/dev/null &&
    vfctl --root $r show enp2s0f1 --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
v0, v1 = d["vfs"]
assert v0["driver"] == "vfio-pci" and (v1["vlan"], v1["trust"], v1["max_tx_rate"]) == (7, True, 100), d
' && vfctl --root $r --backend none unbind enp2s0f1 vf0 >/dev/null &&
    vfctl --root $r --backend none disable enp2s0f1 >/dev/null &&
    ok "enable, set, bind, show, unbind, disable on the simulated host"
vfctl --root $r export >/tmp/export.yaml && vfctl --root $r --backend none plan /tmp/export.yaml |
    grep -q "nothing to do" && ok "export | plan: nothing to do"
vfctl --root $r persist enable --check --json "$ex" | python3 -c 'import json,sys; assert json.load(sys.stdin)["changed"]' &&
    ok "persist enable --check"
vfctl --root $r decode /dev/null >/dev/null 2>&1; [ $? -eq 2 ] && ok "bad input: exit 2"
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
