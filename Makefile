# Quire: `make help` lists the targets. Every target that needs Python creates .venv on first use
# and installs the exact versions in requirements.lock.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.quire-installed
ARGS ?=

export OMP_NUM_THREADS ?= 1

MLFLOW_PORT ?= 5000
LAB_PORT ?= 8888

# The kernel every notebook names and run_all executes them with (lib/run/kernels.py, KERNEL):
# .venv's Python, under the display name the committed notebooks carry, so saving a notebook from
# JupyterLab leaves its kernelspec metadata as committed.
KERNEL := python3
KERNEL_DISPLAY_NAME := Python 3 (ipykernel)

# The git filter that strips notebooks/*.ipynb (see .gitattributes) on commit: outputs, execution
# counts and the metadata a kernel adds on save go; cell ids stay (nbstripout renumbers them
# unless told --keep-id), so a committed notebook passes through it unchanged.
NBSTRIPOUT := "$(CURDIR)/$(BIN)/python" -m nbstripout --keep-id
NBSTRIPOUT_EXTRA_KEYS := $(addprefix metadata.language_info.,codemirror_mode file_extension \
	mimetype nbconvert_exporter pygments_lexer version)
IN_GIT := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo yes)

.PHONY: help install run test test-fast lint format lock bench mlflow-ui serve dashboard clean demo \
	lab kernel git-filter strip vendor-plotly

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock setup.py lib/monitoring/_binned.pyx
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Quire needs Python 3.11; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) git-filter ## create .venv (the others do on demand), build the drift kernel, set up git-filter

# The quire command (lib/cli/; `quire --help`). Its targets put the project's root first on
# PYTHONPATH: the command, and the kernels and servers it starts, import this checkout's lib even
# when .venv is shared with another checkout (whose editable install points there).
QUIRE := $(BIN)/quire
QUIRE_TARGETS := run serve dashboard lab demo mlflow-ui
$(QUIRE_TARGETS): export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

run: $(STAMP) ## run every stage on params/base.yaml (ARGS="--params params/penguins.yaml" to change)
	$(QUIRE) run $(ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time:
# most tests wait on kernels, servers and subprocesses, so two workers on two cores nearly halve it.
TEST_WORKERS ?= 2

test: $(STAMP) ## run the whole test suite, slow tests and lint included
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-fast: $(STAMP) ## run only the fast unit tests
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy on lib/ and server/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## re-resolve the dependencies of pyproject.toml into requirements.lock
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Exact versions of every package Quire installs (pip constraints file)."; \
	  echo "# Regenerate with 'make lock' after changing dependencies in pyproject.toml."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^quire'; } > requirements.lock
	rm -rf .venv-lock

serve: $(STAMP) ## serve the champion over REST on http://127.0.0.1:8000 (QUIRE_SERVER_* settings)
	$(QUIRE) serve $(ARGS)

DASHBOARD_PORT ?= 8866
dashboard: $(STAMP) ## serve the Voila drift dashboard on http://127.0.0.1:$(DASHBOARD_PORT) (ARGS: --params)
	$(QUIRE) dashboard --port $(DASHBOARD_PORT) $(ARGS)

# The dashboard's plotly.js (lib/monitoring/dashboard.py, PLOTLY_BASIC): npm's basic bundle at the plotly.js
# version the installed plotly package carries. Committed, so installing needs no npm; run this
# after upgrading plotly (tests/lib/test_dashboard.py fails until the versions match).
PLOTLY_BASIC_DIR := lib/vendor/plotly-basic
vendor-plotly: $(STAMP) ## refresh the dashboard's vendored plotly.js basic bundle from npm
	@version=$$($(BIN)/python -c 'import plotly.offline as o; print(o.get_plotlyjs_version())') && \
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent "plotly.js-basic-dist-min@$$version" >/dev/null && \
	 tar xzf plotly.js-basic-dist-min-*.tgz) && \
	for f in plotly-basic.min.js LICENSE package.json; do \
		cp "$$tmp/package/$$f" "$(PLOTLY_BASIC_DIR)/$$f.tmp" && \
		mv "$(PLOTLY_BASIC_DIR)/$$f.tmp" "$(PLOTLY_BASIC_DIR)/$$f"; done && \
	echo "$(PLOTLY_BASIC_DIR): plotly.js-basic-dist-min $$version"

kernel: $(STAMP) ## install .venv's Python as the Jupyter kernel the notebooks name (python3)
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "$(KERNEL_DISPLAY_NAME)"

git-filter: $(STAMP) ## make git strip outputs from notebooks/*.ipynb on commit (nbstripout)
ifeq ($(IN_GIT),yes)
	git config filter.nbstripout.clean '$(NBSTRIPOUT)'
	git config filter.nbstripout.smudge cat
	git config filter.nbstripout.required true
	git config filter.nbstripout.extrakeys '$(NBSTRIPOUT_EXTRA_KEYS)'
	git config diff.ipynb.textconv '$(NBSTRIPOUT) --textconv'
else
	@echo "not a git clone: no git filter set up (notebooks/*.ipynb are not stripped on commit)"
endif

strip: $(STAMP) ## remove outputs from notebooks/*.ipynb in place, as the git filter does on commit
	$(NBSTRIPOUT) --extra-keys '$(NBSTRIPOUT_EXTRA_KEYS)' notebooks/*.ipynb

# quire lab: jupyter lab --ip 127.0.0.1 --port $(LAB_PORT) --ServerApp.root_dir=<project root>,
# --allow-root only as root (`quire lab --print-command` shows it).
lab: $(STAMP) kernel git-filter ## open JupyterLab at the project root: http://127.0.0.1:$(LAB_PORT)
	$(QUIRE) lab --port $(LAB_PORT) $(ARGS)

demo: $(STAMP) ## the loop in minutes: pipeline, server, drifted traffic, monitor, dashboard (Ctrl-C ends)
	$(QUIRE) demo $(ARGS)

mlflow-ui: $(STAMP) ## open the MLflow UI on the project's store (http://127.0.0.1:$(MLFLOW_PORT))
	$(QUIRE) mlflow-ui --port $(MLFLOW_PORT) $(ARGS)

bench: $(STAMP) ## run the benchmarks in bench/ and print their tables
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_overhead.py
	$(BIN)/python bench/bench_train.py
	OMP_NUM_THREADS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/bench_server.py
	$(BIN)/python bench/bench_drift.py --dashboard
	$(BIN)/python bench/bench_metrics.py
	OMP_NUM_THREADS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/log_durability.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/bench_lineage.py

clean: ## remove generated data, reports, logs and the MLflow store (keeps .venv)
	rm -rf data reports/*.html reports/*.ipynb reports/*.json logs mlruns mlflow.db
