"""A backfill of every partition, submitted the way the UI does and run by the real Dagster daemon.

The daemon (backfill loop + run queue) launches the runs; the whole backfill must be one run, not
one process per image, and every partition must end up materialized.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline_tests.helpers import image_statuses, pipeline_defs

PROJECT = Path(__file__).parents[1]


def submit_backfill(instance: dg.DagsterInstance, defs: dg.Definitions) -> str:
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=None,
        asset_selection=[IMAGES],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=True,
        title="all images",
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def test_a_full_backfill_is_one_run_launched_by_the_daemon(cli_env: dict[str, str], catalog_path: Path) -> None:
    defs = pipeline_defs(catalog_path, Path(cli_env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        backfill_id = submit_backfill(instance, defs)
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")],
            cwd=PROJECT, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 240
            while instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED:
                assert daemon.poll() is None, daemon.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "backfill did not finish in time"
                time.sleep(1)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)

        assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert image_statuses(defs, instance).materialized == {f"img-{i:02d}" for i in range(6)}
