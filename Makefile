# The README's commands. `make demo` and `make test` work on a fresh Debian 12 machine.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
DEMO  := demo-host

.PHONY: demo test test-fast bench crash-matrix lint deps venv venv-dev lab-deps clean deb deb-test collection

demo: venv
	@scripts/demo.sh $(DEMO)

venv:
	@scripts/install-venv.sh ""

venv-dev: deps
	@scripts/install-venv.sh "dev,libvirt,proxmox"

deps:
	@scripts/install-deps.sh

lab-deps:
	@if [ "$$(id -u)" = 0 ] || [ -f .lab/ready ]; then scripts/lab-deps.sh; \
	else echo "lab-deps: not root; the lab tests will be skipped (set up as root: make lab-deps)"; fi

lint: venv-dev
	$(VENV)/bin/ruff check vfctl tests benchmarks
	$(VENV)/bin/ruff format --check vfctl
	$(VENV)/bin/mypy --strict vfctl

test: lab-deps venv-dev lint
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

test-fast: venv-dev
	$(VENV)/bin/python -m pytest -q -x -m "not lab and not libvirtd" tests

crash-matrix: venv-dev
	rm -f .crash-matrix.log
	VFCTL_CRASH_POINTS=100 VFCTL_CRASH_LOG=$(CURDIR)/.crash-matrix.log \
		$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/host/test_crash_matrix.py
	@awk '{n[$$3]++} END {for (w in n) printf "%s: %d\n", w, n[w]}' .crash-matrix.log

# vfctl_<version>_amd64.deb for this machine's Debian suite, in dist/ (docs/packaging.md)
deb: deps
	@scripts/deb.sh build

# the Ansible collection vfctl.sriov (contrib/ansible) -> dist/vfctl-sriov-<version>.tar.gz
collection: venv-dev
	@mkdir -p dist && $(VENV)/bin/ansible-galaxy collection build --force contrib/ansible --output-path dist

# build + install + run in clean bookworm and trixie chroots (also part of `make test`)
deb-test: deps
	@scripts/deb.sh test bookworm && scripts/deb.sh test trixie

bench: venv-dev
	$(PY) benchmarks/run.py

clean:
	rm -rf build *.egg-info $(DEMO) .bench dist
