# The two commands of the Quick start, and a few more. Each target installs what it needs itself.
#   make demo   train + daily forecast on the embedded demo data; outputs under data/
#   make test   the lint and type gate, then the whole test suite (what CI runs)
#   make lint   ruff, ruff format --check, mypy and the import contracts only
#   make bench  the benchmark against the seed design (needs a folder of FRED CSVs, see bench/README.md;
#               its first run makes the designs' venvs in .venv-bench/, about 2 minutes)
#   make bench-docker  image size and build/run times on a Docker engine (docs/deployment.md)
#   make bench-scaling  10 model groups trained in one process (in threads, then one at a time), then on a 2-worker Dask cluster
#               (docs/scaling.md; demo data, a few minutes)
#   make lock   regenerate requirements.lock (tests) and the images' requirements-daily.lock and
#               requirements-training.lock from pyproject.toml

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE := tests/azurite/node_modules/.bin/azurite-blob
BENCH_DATA ?= ../shared/data/fred
# uv compiles the locks (make lock only); it lives in its own venv, never in the tested one.
UV_VERSION ?= 0.13.9
LOCK_VENV ?= .venv-lock
LOCK_ARGS := --universal --python-version 3.11 --custom-compile-command "make lock" --quiet

# Offline by default: Prefect's anonymous usage telemetry would only time out without a network.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Prefect's temporary API server (used when no PREFECT_API_URL is set) needs more than its 20 s
# default to start on a busy 2-core machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: install demo lint test bench bench-docker bench-scaling lock clean

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
LINTED := flows tasks blocks tests bench

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install $(AZURITE) lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.run --data $(BENCH_DATA)

bench-docker: install
	$(BIN)/python -m bench.docker

bench-scaling: install
	$(BIN)/python -m bench.scaling

# Marker-aware locks valid on every Python 3.11.x (e.g. async-timeout only below 3.11.3). Versions
# already in a lock are kept unless pyproject.toml needs others; to move one on purpose add
# e.g. --upgrade-package prefect. The images' locks (no test tools; the daily one without
# TensorFlow; the training one with the `dask` extra, so it can train on a Dask cluster) are
# compiled with the full lock as constraints, so all pin the same versions.
lock:
	@test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra test $(LOCK_ARGS) -o requirements.lock
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml -c requirements.lock $(LOCK_ARGS) -o requirements-daily.lock
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra train --extra dask -c requirements.lock $(LOCK_ARGS) -o requirements-training.lock

clean:
	rm -rf $(VENV) $(LOCK_VENV) .venv-bench tests/azurite/node_modules .pytest_cache
