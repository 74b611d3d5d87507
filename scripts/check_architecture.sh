#!/usr/bin/env bash
# The architecture and code checks `make test` runs before the suite (issue #10):
# import-linter's layer contracts (pyproject.toml [tool.importlinter]), ruff, and mypy on the core.
set -euo pipefail
bin="${1:-.venv/bin}"
cd "$(dirname "$0")/.."
"$bin/lint-imports" --no-cache
"$bin/ruff" check asset_pipeline asset_pipeline_testing asset_pipeline_tests bench scripts
"$bin/mypy" asset_pipeline/generation asset_pipeline/ledger asset_pipeline/catalog asset_pipeline/imaging \
    asset_pipeline/storage asset_pipeline/hub asset_pipeline/progress asset_pipeline/limits asset_pipeline/prompting \
    asset_pipeline/errors.py
