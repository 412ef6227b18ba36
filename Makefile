# Two entry points for a newcomer: `make demo` and `make test`. Each sets itself up
# (virtual environment, the package with its extras, torch==2.13.0 CPU) idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.heldout-installed
PYTHON ?= python3

.PHONY: setup test lint demo clean browser

setup: $(STAMP)

# Reinstall whenever pyproject.toml changes. torch is pinned on the same command line so pip
# takes the local CPU build and does not resolve a CUDA build for the [hf] extra.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev,hf]"
	# GrowthBook's gbstats, the oracle of the A/B statistics' tests, pins numpy<2 and pandas<2
	# though it runs on the current ones; installed without its pins so it downgrades nothing
	$(PY) -m pip install --quiet --no-deps "gbstats==0.8.0"
	$(PY) -m compileall -q src >/dev/null  # editable installs are not byte-compiled by pip
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict src/

# Headless Chromium for the HTML report test (Debian package). Installed when we are root and
# apt works; otherwise that test is skipped with its reason, and everything else still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1; } || echo "note: chromium not installed; the HTML browser test will skip"

# Two workers (pytest-xdist): the suite takes ~17 min instead of ~25 on the 2-core machine.
test: lint browser
	$(VENV)/bin/pytest -n 2

# The built-in example: scaffold, validate, lock, leak-check, then run base vs candidate;
# then `heldout demo`: a tiny model pre-trained and fine-tuned twice on the CPU, evaluated.
# heldout run exits 1 for any verdict but success; on this 12-sample example the honest
# verdict is "inconclusive", so exit 1 is expected here and anything else fails.
demo: setup
	rm -rf demo && mkdir -p demo
	cd demo && ../$(VENV)/bin/heldout init . && ../$(VENV)/bin/heldout plan validate && \
	  ../$(VENV)/bin/heldout plan lock && ../$(VENV)/bin/heldout plan verify && \
	  ../$(VENV)/bin/heldout leak --train data/train.jsonl && \
	  { ../$(VENV)/bin/heldout run; rc=$$?; test $$rc -le 1; }
	$(VENV)/bin/heldout demo --out demo/finetune

clean:
	rm -rf $(VENV) demo
