#!/bin/sh
# Create .venv and install vfctl into it (editable). $1: extras, e.g. "dev,libvirt,proxmox".
set -eu
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "venv: installing python3-venv" >&2
            apt-get -o DPkg::Lock::Timeout=900 update -qq
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
                --no-install-recommends python3-venv python3-dev gcc
            "$PY" -m venv .venv
        else
            echo "venv: python3 -m venv failed; install python3-venv" >&2
            exit 1
        fi
    fi
    .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
    || [ vfctl/pci/_configspace.c -nt "$stamp" ] || [ vfctl/host/_vfscan.c -nt "$stamp" ] \
    || [ vfctl/_jsonrows.c -nt "$stamp" ]; then
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    .venv/bin/python -m pip install -q --no-build-isolation -e "$spec" 2>&1 \
        | grep -v -e "^WARNING: Location" -e "DEPRECATION" >&2 || true
    .venv/bin/python -c "import vfctl" 
    touch "$stamp"
fi
