# Two commands on a fresh Debian machine: `make demo` and `make test`. Every target first runs the bootstrap,
# which is idempotent and silent when there is nothing to do (it re-installs the Python packages only when
# pyproject.toml is newer than .venv/.installed-stamp, and checks the Debian packages every time).

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Lint only what exists: the tree grows package by package.
LINT_PATHS := $(wildcard protocol central meraapent controller kiosk firmware_bridge hw_sim bench tests)
# bench/scale*.py is `make scale` (1,000 sites, several minutes), not part of `make bench`.
BENCHES := $(filter-out __init__ scale scale_%,$(basename $(notdir $(wildcard bench/*.py))))

.PHONY: bootstrap demo test bench scale lint clean distclean attacks faults

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@bash scripts/demo.sh

test: bootstrap
	$(BIN)/pytest -q

bench: bootstrap
	@$(if $(BENCHES),,echo "no benchmarks in bench/ yet" >&2;) true
	@set -e; for name in $(BENCHES); do $(BIN)/python -m bench.$$name; done

# 1,000 simulated sites against central on PostgreSQL: propagation, API latency, ingestion, memory (bench/scale.py).
scale: bootstrap
	$(BIN)/python -m bench.scale

# The attack suite's long form: 10,000 fuzzed inputs per decoder, schemathesis at length (hw_sim/attacks.py).
attacks: bootstrap
	$(BIN)/python -m hw_sim.attacks

# The fault matrix's full form (agent killed -9 100 times, a day without WAN, ...) and its table (hw_sim/faults).
faults: bootstrap
	$(BIN)/python -m hw_sim.faults

lint: bootstrap
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy $(LINT_PATHS)

# Removes demo data too (var/: database, signing keys, admin token), not the virtualenv.
clean:
	rm -rf var build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
