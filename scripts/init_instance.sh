#!/usr/bin/env bash
# Install the instance config into $DAGSTER_HOME (PostgreSQL when DAGSTER_POSTGRES_URL is set) and
# create its storage once, with `dagster instance migrate`. Without this, the first runs on a new
# SQLite home each create the schema themselves, and runs started together can leave it with two
# alembic heads (a race inside Dagster's storage initialisation) and the home unusable.
# Usage: DAGSTER_HOME=... scripts/init_instance.sh [path/to/dagster]     (what `make instance` runs)
set -euo pipefail
dagster="${1:-dagster}"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the instance directory}"
project="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$DAGSTER_HOME"
if [ -n "${DAGSTER_POSTGRES_URL:-}" ]; then
  cp "$project/dagster.postgres.yaml" "$DAGSTER_HOME/dagster.yaml"
else
  cp "$project/dagster.sqlite.yaml" "$DAGSTER_HOME/dagster.yaml"
fi
"$dagster" instance migrate >/dev/null
echo "instance ready in $DAGSTER_HOME"
