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
from dagster._core.execution.backfill import BulkActionStatus

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.retry_selection import submit_backfill
from asset_pipeline_tests.helpers import image_statuses, pipeline_defs

PROJECT = Path(__file__).parents[1]


def test_a_full_backfill_is_one_run_launched_by_the_daemon(cli_env: dict[str, str], catalog_path: Path) -> None:
    defs = pipeline_defs(catalog_path, Path(cli_env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        every_partition = defs.get_assets_def(IMAGES).partitions_def.get_partition_keys()
        backfill_id = submit_backfill(instance, defs, every_partition, reason="all images, as from the UI")
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
