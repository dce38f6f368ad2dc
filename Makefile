# Two entry points for newcomers: `make run` (serve the function locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
BIN := $(VENV)/bin
# checkov pins versions that clash with the test tools, so it gets a virtualenv of its own.
CHECKOV_VENV ?= .venv-checkov
# Apache Beam (python -m emotion.batch) needs older cryptography and protobuf than the dev tools, so it gets
# a virtualenv of its own too (see requirements-batch.txt); the batch tests run the pipeline with it.
BATCH_VENV ?= .venv-batch

.PHONY: run run-gcs emulator test lint batch mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## Serve analyze_http on http://localhost:$(PORT) with the committed model.
run: $(VENV)/.runtime
	$(BIN)/functions-framework --target=analyze_http --port=$(PORT)

## Serve analyze_gcs (CloudEvents) on http://localhost:$(PORT).
run-gcs: $(VENV)/.runtime
	$(BIN)/functions-framework --target=analyze_gcs --signature-type=cloudevent --port=$(PORT)

## A local Cloud Storage emulator on port 9023 (in memory), for trying analyze_gcs by hand.
emulator: $(VENV)/.dev
	$(BIN)/gcp-storage-emulator start --port 9023 --in-memory

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30

$(BATCH_VENV)/.installed: requirements.txt requirements-batch.txt
	$(PYTHON) -m venv $(BATCH_VENV)
	$(BATCH_VENV)/bin/pip install -q --upgrade pip
	$(BATCH_VENV)/bin/pip install -q -r requirements-batch.txt
	touch $@

## Install Apache Beam into $(BATCH_VENV) for python -m emotion.batch.
batch: $(BATCH_VENV)/.installed

## Lint, formatting and types: the serving package (emotion/*.py, main.py) strictly, the rest at mypy's default.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict emotion/*.py main.py
	$(BIN)/mypy emotion/training emotion/batch bench infra tests

## Install everything the tests need, lint, then run the whole suite.
test: lint $(CHECKOV_VENV)/bin/checkov $(BATCH_VENV)/.installed
	CHECKOV=$(abspath $(CHECKOV_VENV))/bin/checkov BATCH_PYTHON=$(abspath $(BATCH_VENV))/bin/python $(BIN)/python -m pytest

## Mutation testing, outside CI's time (minutes a module): each module's mutants against its own tests.
## make mutation MODULES="detect config" (default: every module in tests/mutation/mutation.toml);
## scores go to tests/mutation/scores.md and scores.json.
MODULES ?=
mutation: $(VENV)/.dev
	nice -n 10 $(BIN)/python tests/mutation/run.py $(MODULES)
