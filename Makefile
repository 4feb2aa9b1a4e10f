# Two entry points for a fresh clone (see README): `make quickstart` and `make test`.
# Each creates .venv on first use (idempotent: reinstalls only when the pins change).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_DIR ?= runs/quickstart

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	# torch 2.13.0 resolves to the CPU build on local disk; a bare `torch` would pull CUDA (GBs).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

.PHONY: quickstart test lint bench
quickstart: $(STAMP)
	$(VENV)/bin/ray-pipeline run experiments/quickstart.yaml --run-dir $(RUN_DIR)

test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The project's ruff rules (pyproject.toml); also a pre-commit hook (.pre-commit-config.yaml).
lint: $(STAMP)
	$(VENV)/bin/ruff check ray_pipeline tests bench cluster

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done
