# Weather pipeline: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STAMP := $(VENV)/.installed
# A .pth file in the venv's site-packages puts the project root on sys.path, so the venv's python
# runs `-m pipeline`, `-m producer` and `-m bench` from any folder. Not `pip install -e .`: the
# project's packaging builds the Databricks wheel (contract/ and spark/ only), not the local tools.
PTH := weather-pipeline.pth

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

prereqs: ## Check Python 3.11+, Java 17 and Node.js are present
	@$(PYTHON) scripts/check_prereqs.py

$(STAMP): requirements.txt requirements-dev.txt package.json
	@$(PYTHON) scripts/check_prereqs.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm install --no-audit --no-fund --silent
	@$(MAKE) --no-print-directory path
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything (Python packages, Azurite)

path: ## Let .venv's python run python -m pipeline (producer, bench) from any folder: a .pth file
	@$(PY) -c "import pathlib, sys, sysconfig; pth = pathlib.Path(sysconfig.get_paths()['purelib'], sys.argv[1]); pth.write_text(sys.argv[2] + '\n'); print(f'{pth} -> {sys.argv[2]}')" "$(PTH)" "$(CURDIR)"

demo: install ## Run the whole pipeline on embedded defaults in a fresh state folder
	$(PY) -m pipeline demo

test: install ## Install what the tests need and run them all (unit, integration, e2e)
	$(PY) -m pytest tests -q

test-unit: install ## Fast tests of pure code
	$(PY) -m pytest tests/unit -q

test-integration: install ## Tests against real servers (Azurite, PostgreSQL) and local Spark
	$(PY) -m pytest tests/integration -q

test-e2e: install ## The whole pipeline on a small run
	$(PY) -m pytest tests/e2e -q

lint: install ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install ## Apply ruff's formatter and safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install ## Benchmarks with same-run baselines (takes several minutes)
	$(PY) -m bench

clean-state: ## Delete .local/ (the default state folder and every demo-* folder); a PIPELINE_HOME elsewhere stays
	rm -rf .local

.PHONY: help prereqs install path demo test test-unit test-integration test-e2e lint format bench clean-state
