"""`asset-pipeline retry-failed` on a real instance after a partly failed range run, run by the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from asset_pipeline_tests.helpers import FailingGenerator, image_statuses, materialize, pipeline_defs

PROJECT = Path(__file__).parents[2]


def test_retry_failed_backfills_exactly_the_failed_partitions(run_cli, cli_env, catalog_path: Path) -> None:
    defs = pipeline_defs(catalog_path, Path(cli_env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        flaky = FailingGenerator(failing_ids=["img-01", "img-04"])
        assert not materialize(defs, instance, first="img-00", last="img-05", resources={"image_generator": flaky}).success

    dry = json.loads(run_cli("asset-pipeline", "retry-failed", "--dry-run", "--json").stdout)
    assert dry == {"failed": ["img-01", "img-04"], "estimated_cost_usd": 0.0, "dry_run": True, "backfill_id": None,
                   "circuit_open_for_s": 0.0}

    submitted = run_cli("asset-pipeline", "retry-failed")
    assert submitted.returncode == 0, submitted.stderr
    assert "2 failed partition(s), estimated $0.0000: img-01, img-04" in submitted.stdout
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        [backfill] = instance.get_backfills()
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")],
            cwd=PROJECT, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 240
            while instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.REQUESTED:
                assert time.monotonic() < deadline, "backfill did not finish"
                time.sleep(1)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        assert instance.get_backfill(backfill.backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
        statuses = image_statuses(defs, instance)
        assert statuses.failed == set() and len(statuses.materialized) == 6
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        planned = set()
        for run in runs:
            planned |= {run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]}
        assert planned == {"img-01", "img-04"}  # exactly the failed ones, nothing else re-run
    assert "no failed image partitions" in run_cli("asset-pipeline", "retry-failed").stdout


def test_retry_failed_submits_nothing_while_the_circuit_is_open(run_cli, cli_env, catalog_path: Path) -> None:
    from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
    from asset_pipeline.ledger.database import ledger_engine

    env = {**cli_env, "ASSET_PIPELINE_BACKEND": "replicate", "REPLICATE_API_TOKEN": "r8_not_used_here"}
    data_dir = Path(env["ASSET_PIPELINE_DATA_DIR"])
    defs = pipeline_defs(catalog_path, data_dir, backend="replicate")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        flaky = FailingGenerator(failing_ids=["img-03"])
        assert not materialize(defs, instance, first="img-03", last="img-03", resources={"image_generator": flaky}).success
    CircuitBreaker(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), provider="replicate",
                   config=BreakerConfig(minimum_calls=1)).record(ok=False, trial=False)

    dry = json.loads(run_cli("asset-pipeline", "retry-failed", "--dry-run", "--json", env=env).stdout)
    assert dry["failed"] == ["img-03"] and 25 < dry["circuit_open_for_s"] <= 30
    refused = run_cli("asset-pipeline", "retry-failed", env=env)
    assert refused.returncode == 1
    assert "replicate circuit breaker is open for another" in refused.stderr and "nothing was submitted" in refused.stderr
    assert "r8_not_used_here" not in refused.stdout + refused.stderr
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_backfills() == []
