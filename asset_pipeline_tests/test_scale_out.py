"""Scale-out: a backfill split into concurrent runs (ASSET_PIPELINE_PARTITIONS_PER_RUN) on PostgreSQL,
launched by the real daemon, against the fake Replicate server: the caps and no-double-pay hold
across runs (one catalog entry duplicates another in a different run)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.definitions import build_defs
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.retry_selection import submit_backfill
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.daemon import running_daemon
from asset_pipeline_testing.helpers import image_statuses, write_catalog
from asset_pipeline_testing.postgres import fresh_database
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

PROJECT = Path(__file__).parents[1]
CAP = 0.0305  # ten images at $0.003


@pytest.fixture
def databases():
    with fresh_database() as dagster_url, fresh_database() as ledger_url:
        yield dagster_url, ledger_url


def test_a_backfill_in_concurrent_runs_keeps_the_caps_and_pays_once(
    fake_replicate, cli_env: dict[str, str], tmp_path: Path, databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_url, ledger_url = databases
    fake_replicate.latency_s = 3.0
    entries = [{"id": f"img-{i:02d}", "category": "icon", "prompt": f"a brass key number {i}", "width": 512,
                "height": 512, "seed": i} for i in range(12)]
    entries[3] = {**entries[0], "id": "img-03"}  # the same picture as img-00, in another run
    catalog = write_catalog(tmp_path / "c.yaml", entries)
    home = Path(cli_env["DAGSTER_HOME"])
    shutil.copy(PROJECT / "dagster.postgres.yaml", home / "dagster.yaml")
    env = {**cli_env, "DAGSTER_POSTGRES_URL": dagster_url, "ASSET_PIPELINE_CATALOG": str(catalog),
           "ASSET_PIPELINE_BACKEND": "replicate", "REPLICATE_API_TOKEN": TOKEN,
           "REPLICATE_BASE_URL": fake_replicate.base_url, "ASSET_PIPELINE_POLL_INTERVAL_S": "0.05",
           "ASSET_PIPELINE_DATABASE_URL": ledger_url, "ASSET_PIPELINE_PARTITIONS_PER_RUN": "3",
           "ASSET_PIPELINE_BUDGET_TOTAL_USD": str(CAP), "ASSET_PIPELINE_HUB_ENABLED": "false"}
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url)
    defs = build_defs(PipelineSettings(catalog=catalog, data_dir=Path(env["ASSET_PIPELINE_DATA_DIR"]),
                                       partitions_per_run=3))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        keys = defs.get_assets_def(IMAGES).partitions_def.get_partition_keys()
        backfill_id = submit_backfill(instance, defs, keys, reason="all images, in batches of 3")
        with running_daemon(env=env, workspace=PROJECT / "workspace.yaml", log=tmp_path / "daemon.log",
                            cwd=PROJECT) as daemon:
            deadline = time.monotonic() + 400
            while instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED or any(
                not run.is_finished for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            ):
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "backfill did not finish in time"
                time.sleep(1)
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(records) == 4
        spans = sorted((r.start_time, r.end_time) for r in records)
        assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), "no two runs overlapped"
        statuses = image_statuses(defs, instance)

    assert len(statuses.materialized) + len(statuses.failed) == 12 and statuses.failed
    assert max(fake_replicate.creations.values()) == 1  # no picture was created twice, across runs
    assert fake_replicate.created_total == 10
    status = BudgetLedger(ledger_engine(ledger_url)).status(BudgetCaps(CAP, 10, 20))
    assert status.open_reservations == 0
    assert status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)
    assert fake_replicate.bill_usd <= CAP
