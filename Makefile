# One-command entry points: `make demo` (sample run) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE_SIZE ?= 10
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test check dev instance venv browser hub bench bench-scale clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[dev,diffusers]'
	touch $@

# Install the instance config into DAGSTER_HOME (PostgreSQL when DAGSTER_POSTGRES_URL is set) and
# create its storage once (`dagster instance migrate`), so concurrent first runs cannot race on it.
# The templates are not named dagster.yaml: Dagster only reads $DAGSTER_HOME/dagster.yaml, and
# `dagster dev` warns about any dagster.yaml in the folder it starts from.
instance: venv
	scripts/init_instance.sh "$(BIN)/dagster"

demo: venv instance
	@range=$$($(BIN)/asset-pipeline catalog sample-range --count $(SAMPLE_SIZE)) && \
	echo "Materializing images $$range through the Dagster CLI (DAGSTER_HOME=$(DAGSTER_HOME))" && \
	$(BIN)/dagster asset materialize -m asset_pipeline.definitions --select images --partition-range "$$range" && \
	$(BIN)/dagster asset materialize -m asset_pipeline.definitions --select image_variants --partition-range "$$range" && \
	$(BIN)/dagster asset materialize -m asset_pipeline.definitions --select asset_manifest,contact_sheet && \
	$(BIN)/asset-pipeline report --partition-range "$$range"

dev: venv instance
	$(BIN)/dagster dev -w workspace.yaml

# Debian's chromium for the dashboard test (Playwright drives it; no browser is ever downloaded).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium (the dashboard test is skipped without it)"; fi; }

# Architecture contracts, lint and types first (seconds), then the suite.
check: venv
	scripts/check_architecture.sh $(BIN)

test: venv browser check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

hub: venv instance
	$(BIN)/asset-pipeline hub

bench: venv instance
	$(BIN)/python bench/placeholder_backfill.py
	$(BIN)/python bench/replicate_budget.py
	$(BIN)/python bench/replicate_faults.py
	$(BIN)/python bench/flaky_provider.py
	$(BIN)/python bench/diffusers_progress.py
	$(BIN)/python bench/hub_fanout.py
	$(BIN)/python bench/comfyui.py
	$(BIN)/python bench/hub_scaleout.py
	$(BIN)/python bench/adaptive_concurrency.py --partitions 100
	$(BIN)/python bench/object_store_backfill.py --partitions 100
	$(BIN)/python bench/prompts_backfill.py --size 100

# The full-scale proofs on PostgreSQL (chaos restarts the server: run nothing else beside it).
bench-scale: venv
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/chaos.py
	$(BIN)/python bench/backfill.py --partitions-per-run 98 --provider-create-limit 10 --runs-at-once 5

clean:
	rm -rf $(VENV) .pytest_cache
