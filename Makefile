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
SPARK_JARS := .spark-jars

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

prereqs: ## Check Python 3.11+, Java 17, Maven and Node.js are present
	@$(PYTHON) scripts/check_prereqs.py

$(STAMP): requirements.txt requirements-dev.txt package.json scripts/spark-jars/pom.xml
	@$(PYTHON) scripts/check_prereqs.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm install --no-audit --no-fund --silent
	rm -rf $(SPARK_JARS)
	mvn --quiet --batch-mode -f scripts/spark-jars/pom.xml dependency:copy-dependencies \
	  -DoutputDirectory=$(CURDIR)/$(SPARK_JARS) -DincludeArtifactIds=delta-spark_2.13,delta-storage,spark-avro_2.13
	@$(MAKE) --no-print-directory path
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything (Python packages, Azurite, Delta Lake and Avro jars for Spark)

# The real Azure Functions Python worker (azure-functions-runtime needs Python >= 3.13) in a venv
# of its own, for tests/integration/test_worker_conformance.py. Without a Python 3.13+ it prints a
# note (the test then fails saying so); WORKER_REQUIRED=1 (CI) makes that an error.
WORKER_VENV ?= .venv-worker
WORKER_STAMP := $(WORKER_VENV)/.installed
$(WORKER_STAMP): requirements.txt requirements-worker.txt scripts/worker_env.py
	@$(PYTHON) scripts/worker_env.py --venv $(WORKER_VENV) $(if $(WORKER_PYTHON),--python $(WORKER_PYTHON)) $(if $(WORKER_REQUIRED),--required)

install: $(WORKER_STAMP)

worker-env: $(WORKER_STAMP) ## The Functions worker's own venv (.venv-worker, Python >= 3.13) for its conformance test

path: ## Let .venv's python run python -m pipeline (producer, bench) from any folder: a .pth file
	@$(PY) -c "import pathlib, sys, sysconfig; pth = pathlib.Path(sysconfig.get_paths()['purelib'], sys.argv[1]); pth.write_text(sys.argv[2] + '\n'); print(f'{pth} -> {sys.argv[2]}')" "$(PTH)" "$(CURDIR)"

demo: install ## Run the whole pipeline on embedded defaults in a fresh state folder
	$(PY) -m pipeline demo

test: install ## Install what the tests need and run them all (unit, integration, e2e, faults)
	$(PY) -m pytest tests -q

test-unit: install ## Pure code only (no Java, servers, subprocesses or Delta writes): seconds
	$(PY) -m pytest tests/unit -q

test-integration: install ## Real components: Azurite, PostgreSQL, local Spark, Delta tables, ODBC, subprocesses
	$(PY) -m pytest tests/integration -q

test-e2e: install ## The whole pipeline on a small run
	$(PY) -m pytest tests/e2e -q

# The fault matrix (tests/faults, also part of `make test`). As root it mounts small tmpfs lakes
# (a full disk, a read-only folder); elsewhere a lake adapter fails the same way.
test-faults: install ## Faults (outages, kills, replays, damaged bronze): nothing lost, audit ok, SQL exact
	$(PY) -m pytest tests/faults -q

faults: install ## Run the fault matrix and print it: fault | events | lost | doubled | audit | result
	$(PY) -m pytest tests/faults -q --tb=line -p no:warnings

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

.PHONY: help prereqs install path worker-env demo test test-unit test-integration test-e2e test-faults faults lint format bench clean-state
