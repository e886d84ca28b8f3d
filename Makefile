# ndt: `sudo make demo` runs the main job on the built-in default topology; `sudo make test` runs
# the tests. Both install what is missing first (apt packages, the venv and its Python packages),
# idempotently. As root, plain `make demo` / `make test` work the same. Labs run Open vSwitch
# daemons of their own (ptwin/switchd.py): the machine's need not run.

VENV      := .venv
PY        := $(VENV)/bin/python
APT_PKGS  := mininet openvswitch-switch openvswitch-testcontroller d-itg iputils-ping ethtool \
             iproute2 procps python3-venv python3-pip
PYTEST_ARGS ?=

.PHONY: install apt venv demo test lint bench clean-venv root

root:
	@[ "$$(id -u)" = 0 ] || { echo "make: this needs root (Mininet, Open vSwitch): use sudo make $(MAKECMDGOALS)" >&2; exit 1; }

install: root apt venv

apt: root
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The venv must see Debian's Mininet module: Debian's python3 with --system-site-packages.
venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

demo: install
	$(VENV)/bin/ndt demo

# ruff, then the tier without a lab (pure code over seeded stores, one pytest-xdist worker per core,
# a file's tests on one worker), then the lab tier (`-m lab`, one process: labs share ports and
# bridge names); both tiers run even when the first fails, and make fails if either did (5: nothing
# selected).
test: install
	$(VENV)/bin/ruff check .
	@fast=0; $(PY) -m pytest -m "not lab" -n auto --dist loadfile $(PYTEST_ARGS) || fast=$$?; [ $$fast = 5 ] && fast=0; \
	lab=0; $(PY) -m pytest -m lab $(PYTEST_ARGS) || lab=$$?; [ $$lab = 5 ] && lab=0; \
	[ $$fast = 0 ] && [ $$lab = 0 ]

lint: venv
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/lab_scale.py

clean-venv:
	rm -rf $(VENV)
