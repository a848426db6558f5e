# The two commands of the Quick start, and a few more. Each target installs what it needs itself.
#   make demo   train + daily forecast on the embedded demo data; outputs under data/
#   make test   the lint and type gate, then the whole test suite (what CI runs)
#   make lint   ruff, ruff format --check, mypy and the import contracts only
#   make bench  the benchmark against the seed design (needs a folder of FRED CSVs, see bench/README.md)

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := tests/azurite/node_modules/.bin/azurite-blob
BENCH_DATA ?= ../shared/data/fred

# Offline by default: Prefect's anonymous usage telemetry would only time out without a network.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Prefect's temporary API server (used when no PREFECT_API_URL is set) needs more than its 20 s
# default to start on a busy 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: install demo lint test bench clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m flows.train_model --output-dir data
	$(BIN)/python -m flows.daily_forecast --output-dir data --force
	@echo "Outputs: data/latest.json -> newest run folder data/runs/<YYYYMMDD_HHMMSS>/ ; models in data/models/"

$(AZURITE): tests/azurite/package.json tests/azurite/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the Azurite tests"; exit 1; }
	cd tests/azurite && npm ci --no-audit --no-fund --silent

# Lint and type gate: ruff (rules and formatting), mypy (strict on tasks/core), import-linter (layers).
LINTED := flows tasks blocks

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install $(AZURITE) lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.run --data $(BENCH_DATA)

clean:
	rm -rf $(VENV) tests/azurite/node_modules .pytest_cache
