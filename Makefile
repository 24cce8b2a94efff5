# Two commands for a researcher: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The set-up stamp depends on the files that define the environment: re-running `make setup`
# when nothing changed takes well under a second.
STAMP := $(VENV)/.setup-stamp

.PHONY: setup demo test test-fast ui lint clean-demo bench generated

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Frost textures: package data of imagecorruptions 1.1.2, installed without its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps imagecorruptions==1.1.2
	@touch $@

# The whole pipeline on the offline demo config (digits), in demo/; params.yaml stays untouched.
demo: setup
	$(BIN)/augmix demo --workdir demo

# The whole test suite (real DVC, Snakemake and MLflow runs included).
test: setup
	$(BIN)/python -m pytest -q

# The quick loop: everything not marked slow (no pipeline runs, servers, signals, DDP, benchmarks or UI).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# ruff's checks (rules in pyproject.toml). No `ruff format --check`: the code is not in ruff's format.
lint: setup
	$(BIN)/ruff check src tests workflow/scripts

# Browse the MLflow runs (the project's store: mlflow.db at the repo root) on 127.0.0.1; PORT=N to move it.
PORT ?= 5000
ui: setup
	$(BIN)/augmix ui --port $(PORT)

bench: setup
	$(BIN)/augmix bench augment
	$(BIN)/augmix bench corrupt
	$(BIN)/augmix bench train

clean-demo:
	rm -rf demo

# Files derived from the code, committed and checked by tests: the params JSON schema (Snakemake
# validates with it) and dvc.yaml (the job table and each stage's import closure).
generated: setup
	$(BIN)/augmix schema --out workflow/schemas/params.schema.json
	$(BIN)/python workflow/scripts/write_dvc_yaml.py
