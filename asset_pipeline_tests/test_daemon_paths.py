"""Every path a user takes, through the real `dagster-daemon` and the webserver's GraphQL (SQLite).

One daemon and one webserver serve the whole module; the tests run in order on one instance, each
leaving the state the next one starts from (catalog img-00 ... img-13):

1. `dagster asset materialize --partition-range` with two partitions failing at the provider;
2. `failed_images_sensor` turned on as the UI does (`startSensor`): it re-runs exactly those two;
3. a UI backfill (`launchPartitionBackfill`) of a range, one partition failing;
4. the UI's "backfill failed and missing" (partition statuses from GraphQL, then a backfill);
5. `asset-pipeline retry-failed`;
6. `images_within_budget` on a cron of every minute, started as the UI does (`startSchedule`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionsFilter

from asset_pipeline.retry_selection import (
    ESTIMATED_COST_TAG,
    PARTITION_COUNT_TAG,
    RETRY_TAG,
)
from asset_pipeline_testing.dagster_stack import BIN, DagsterStack, dagster_stack
from asset_pipeline_testing.helpers import (
    small_entries,
    write_catalog,
)

PROJECT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    root = tmp_path_factory.mktemp("daemon_paths")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.sqlite.yaml", home / "dagster.yaml")
    catalog = write_catalog(root / "catalog.yaml", small_entries(14))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), ASSET_PIPELINE_CATALOG=str(catalog), ASSET_PIPELINE_DATA_DIR=str(root / "data"),
               ASSET_PIPELINE_IMAGES_CRON="* * * * *")
    with dagster_stack(root, env) as running:
        yield running


def test_cli_partition_range_with_provider_failures(stack: DagsterStack) -> None:
    stack.fail("img-01", "img-03")
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "asset_pipeline_testing.daemon_location", "--select",
         "images", "--partition-range", "img-00...img-03"],
        cwd=PROJECT, env=stack.env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode != 0 and "img-01" in done.stderr + done.stdout
    now = stack.image_statuses()
    assert now.materialized == {"img-00", "img-02"} and now.failed == {"img-01", "img-03"}


def test_the_sensor_turned_on_in_the_ui_reruns_exactly_the_failed_partitions(stack: DagsterStack) -> None:
    stack.fail()  # the provider recovered
    state_id = stack.start_sensor("failed_images_sensor")

    def requested_backfill():  # type: ignore[no-untyped-def]
        with stack.instance() as instance:
            found = instance.get_backfills(filters=BulkActionsFilter(tags={RETRY_TAG: "failed_images_sensor"}))
            return found[0].backfill_id if found else None

    backfill_id = stack.wait_for("the sensor's backfill", requested_backfill)
    stack.stop_sensor(state_id)
    runs = stack.wait_for_backfill_runs(backfill_id, [("img-01", "img-01"), ("img-03", "img-03")])
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    [tick] = [t for t in stack.ticks("sensor", "failed_images_sensor") if t["status"] != "SKIPPED"]
    assert tick["status"] == "SUCCESS" and tick["error"] is None, tick
    assert stack.image_statuses().materialized == {"img-00", "img-01", "img-02", "img-03"}


def test_a_ui_backfill_of_a_range_is_one_run(stack: DagsterStack) -> None:
    stack.fail("img-05")
    backfill_id = stack.launch_backfill(["img-04", "img-05", "img-06", "img-07"])
    [run] = stack.wait_for_backfill_runs(backfill_id, [("img-04", "img-07")])
    assert run.status == dg.DagsterRunStatus.FAILURE
    now = stack.image_statuses()
    assert now.failed == {"img-05"} and {"img-04", "img-06", "img-07"} <= now.materialized


def test_backfill_failed_and_missing_from_the_ui(stack: DagsterStack) -> None:
    stack.fail("img-09")
    shown = stack.partition_statuses()
    picked = sorted(set(shown["failedPartitions"]) | set(shown["unmaterializedPartitions"]))
    assert picked == ["img-05", "img-08", "img-09", "img-10", "img-11", "img-12", "img-13"]
    picked = picked[:-2]  # the user leaves the last two for the schedule
    backfill_id = stack.launch_backfill(picked)
    stack.wait_for_backfill_runs(backfill_id, [("img-05", "img-05"), ("img-08", "img-11")])  # non-contiguous: 2 runs
    now = stack.image_statuses()
    assert now.failed == {"img-09"} and {"img-05", "img-08", "img-10", "img-11"} <= now.materialized


def test_retry_failed_backfills_exactly_the_failed_partitions(stack: DagsterStack) -> None:
    stack.fail()
    dry = subprocess.run([str(BIN / "asset-pipeline"), "retry-failed", "--dry-run", "--json"], cwd=PROJECT,
                         env=stack.env, capture_output=True, text=True, timeout=300, check=False)
    assert json.loads(dry.stdout) == {"failed": ["img-09"], "estimated_cost_usd": 0.0, "dry_run": True,
                                      "backfill_id": None, "circuit_open_for_s": 0.0, "selection": "failed",
                                      "assets": ["images"]}
    submitted = subprocess.run([str(BIN / "asset-pipeline"), "retry-failed"], cwd=PROJECT, env=stack.env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert submitted.returncode == 0, submitted.stderr
    assert "1 failed partition(s), estimated $0.0000: img-09" in submitted.stdout
    with stack.instance() as instance:
        [backfill] = instance.get_backfills(filters=BulkActionsFilter(tags={RETRY_TAG: "retry-failed"}))
    [run] = stack.wait_for_backfill_runs(backfill.backfill_id, [("img-09", "img-09")])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert stack.image_statuses().failed == set()


def test_the_schedule_started_in_the_ui_runs_the_partitions_it_chose(stack: DagsterStack) -> None:
    preview = stack.preview_schedule("images_within_budget")
    assert preview["error"] is None and preview["skipReason"] is None, preview
    [request] = preview["runRequests"]
    assert request["runKey"] == "img-12...img-13"
    assert {"key": PARTITION_COUNT_TAG, "value": "2"} in request["tags"]
    assert {"key": ESTIMATED_COST_TAG, "value": "0.0000"} in request["tags"]
    stack.start_schedule("images_within_budget")  # cron: every minute

    def launched():  # type: ignore[no-untyped-def]
        return [t for t in stack.ticks("schedule", "images_within_budget") if t["status"] != "STARTED"]

    [tick] = stack.wait_for("the schedule's first tick", launched, timeout_s=130)
    assert tick["status"] == "SUCCESS" and tick["error"] is None, tick
    [run_id] = tick["runIds"]

    def finished():  # type: ignore[no-untyped-def]
        with stack.instance() as instance:
            run = instance.get_run_by_id(run_id)
            return run if run.is_finished else None

    run = stack.wait_for("the scheduled run", finished)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/asset_partition_range_start"] == "img-12"
    assert run.tags["dagster/asset_partition_range_end"] == "img-13"
    assert run.tags[PARTITION_COUNT_TAG] == "2" and run.tags[ESTIMATED_COST_TAG] == "0.0000"
    assert run.tags[RETRY_TAG] == "schedule"
    assert stack.image_statuses().materialized == {f"img-{i:02d}" for i in range(14)}
    idle = stack.preview_schedule("images_within_budget")
    assert idle["runRequests"] == [] and "every image is materialized" in idle["skipReason"]
