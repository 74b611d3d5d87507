"""The UI's backfill paths on PostgreSQL instance storage (dagster.postgres.yaml), through the real
`dagster-daemon` and the webserver's GraphQL: a backfill of every partition is one run, and
"backfill failed and missing" re-runs exactly the partition the provider failed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline_testing.dagster_stack import DagsterStack, dagster_stack
from asset_pipeline_testing.helpers import (
    small_entries,
    write_catalog,
)
from asset_pipeline_testing.postgres import fresh_database

PROJECT = Path(__file__).parents[1]
EVERY = [f"img-{i:02d}" for i in range(6)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    root = tmp_path_factory.mktemp("daemon_paths_postgres")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.postgres.yaml", home / "dagster.yaml")  # what `make instance` does
    catalog = write_catalog(root / "catalog.yaml", small_entries(6))
    with fresh_database() as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_POSTGRES_URL", url)  # this process reads the same instance
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSET_PIPELINE_")}
        env.update(DAGSTER_HOME=str(home), ASSET_PIPELINE_CATALOG=str(catalog),
                   ASSET_PIPELINE_DATA_DIR=str(root / "data"))
        with dagster_stack(root, env) as running:
            yield running


def test_a_ui_backfill_of_every_partition_is_one_run(stack: DagsterStack) -> None:
    with stack.instance() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    stack.fail("img-02")
    backfill_id = stack.launch_backfill(EVERY)
    [run] = stack.wait_for_backfill_runs(backfill_id, [("img-00", "img-05")])
    assert run.status == dg.DagsterRunStatus.FAILURE
    now = stack.image_statuses()
    assert now.failed == {"img-02"} and now.materialized == set(EVERY) - {"img-02"}


def test_backfill_failed_and_missing_on_postgresql(stack: DagsterStack) -> None:
    stack.fail()
    shown = stack.partition_statuses()
    picked = sorted(set(shown["failedPartitions"]) | set(shown["unmaterializedPartitions"]))
    assert picked == ["img-02"]
    backfill_id = stack.launch_backfill(picked)
    [run] = stack.wait_for_backfill_runs(backfill_id, [("img-02", "img-02")])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert stack.image_statuses().materialized == set(EVERY)
