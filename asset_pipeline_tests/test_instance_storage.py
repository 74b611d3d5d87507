"""The pooled PostgreSQL event log (asset_pipeline/instance_storage.py) that dagster.postgres.yaml
and deploy/ select: a range run stores every event over a handful of connections, and a server
that dropped them costs one reconnect, not a failed run."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, event, text

from asset_pipeline.instance_storage import PooledPostgresEventLogStorage
from asset_pipeline_testing.helpers import image_statuses, materialize, pipeline_defs
from asset_pipeline_testing.postgres import fresh_database

PROJECT = Path(__file__).parents[1]


@pytest.fixture
def pg_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with fresh_database() as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
        shutil.copy(PROJECT / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            yield instance, url


def test_a_range_run_stores_its_events_over_a_few_kept_connections(pg_instance, catalog_path, data_dir) -> None:
    instance, _ = pg_instance
    storage = instance.event_log_storage
    assert isinstance(storage, PooledPostgresEventLogStorage)
    connects = []
    event.listen(storage._engine, "connect", lambda *_: connects.append(1))
    defs = pipeline_defs(catalog_path, data_dir)
    assert materialize(defs, instance, first="img-00", last="img-05").success
    records = instance.get_records_for_run(instance.get_runs()[0].run_id, limit=1000).records
    checks = [r for r in records if r.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert len(checks) == 6 * 4  # every event was stored (3 image checks and `approved` per partition) ...
    assert len(connects) <= 1 + 8  # ... over the kept connection plus overflow, not one per event (NullPool: > 40)


def test_connections_the_server_dropped_are_replaced_without_failing_the_run(pg_instance, catalog_path, data_dir) -> None:
    instance, url = pg_instance
    defs = pipeline_defs(catalog_path, data_dir)
    assert materialize(defs, instance, first="img-00", last="img-01").success
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # what a PostgreSQL restart does to every kept connection
        dropped = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalar_one()
    admin.dispose()
    assert dropped >= 1
    assert materialize(defs, instance, first="img-02", last="img-03").success
    assert image_statuses(defs, instance).materialized == {"img-00", "img-01", "img-02", "img-03"}
