"""`run_events_to_hub` with a real instance and a real hub: forwards runs, materializations and checks
once each, across restarts (a fresh sensor context with the stored cursor), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.sensors.run_event_records import RunEventsCursor
from asset_pipeline.sensors.run_events_to_hub import run_events_to_hub
from asset_pipeline_testing.helpers import materialize, pipeline_defs
from asset_pipeline_testing.hub_process import running_hub
from asset_pipeline_testing.postgres import fresh_database
from asset_pipeline_testing.serving import free_port


def tick(instance: dg.DagsterInstance, cursor: str | None, hub_url: str) -> tuple[object, str | None]:
    """One evaluation, as after a daemon restart: only the stored cursor carries over."""
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"progress_hub": ProgressHub(url=hub_url, enabled=True)}) as context:
        result = run_events_to_hub(context)
        return result, context.cursor


def forwarded_ids(hub) -> Counter:
    return Counter(entry["event_id"] for entry in _history(hub))


def _history(hub) -> list[dict]:
    import json

    return [message for message in map(json.loads, hub.hub.state.history()) if message["type"] == "run_event"]


def check_forwarding(instance: dg.DagsterInstance, catalog_path: Path, data_dir: Path) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    first = materialize(defs, instance, first="img-00", last="img-01")
    assert first.success
    with running_hub() as hub:
        result, cursor = tick(instance, None, hub.url)
        assert result is None and cursor
        events = _history(hub)
        kinds = Counter(event["event_type"] for event in events)
        images = [e for e in events if e["event_type"] == "ASSET_MATERIALIZATION" and e["asset_key"] == "images"]
        # The images step also logs the (free) `prompts` partition of each written prompt.
        assert len(images) == 2 and kinds["ASSET_MATERIALIZATION"] == 4
        assert kinds["PIPELINE_SUCCESS"] == 1 and kinds["STEP_START"] == 1
        assert kinds["ASSET_CHECK_EVALUATION"] == 2 * len([c for c in defs.get_assets_def("images").check_keys])
        state = hub.hub.state
        assert state.runs[first.run_id]["status"] == "SUCCESS"
        assert state.partitions["img-00"]["status"] == "completed"
        assert state.partitions["img-00"]["path"].endswith("images/img-00.png")
        checks = dict(state.partitions["img-01"]["checks"])
        assert checks.pop("approved") is False  # review loop: a new image is unreviewed (a WARN check)
        assert all(checks.values())

        again, same_cursor = tick(instance, cursor, hub.url)  # a restart with nothing new: a silent tick
        assert again is None and same_cursor == cursor

        second = materialize(defs, instance, first="img-02", last="img-02")
        _, cursor = tick(instance, same_cursor, hub.url)
        assert RunEventsCursor.parse(cursor).runs == {}  # finished runs are no longer followed
        ids = forwarded_ids(hub)
        assert max(ids.values()) == 1 and hub.hub.state.counters.duplicates_ignored == 0
        assert {e["run_id"] for e in _history(hub)} == {first.run_id, second.run_id}
        assert state.partitions["img-02"]["status"] == "completed"

    quiet, _ = tick(instance, cursor, f"http://127.0.0.1:{free_port()}")  # hub down, nothing to send
    assert quiet is None
    third = materialize(defs, instance, partition="img-03")
    down, kept = tick(instance, cursor, f"http://127.0.0.1:{free_port()}")  # the hub is down
    assert isinstance(down, dg.SkipReason) and "unreachable" in down.skip_message and kept == cursor
    with running_hub() as hub:
        tick(instance, kept, hub.url)
        assert {e["run_id"] for e in _history(hub)} == {third.run_id}  # nothing skipped, nothing repeated


def test_forwarding_on_the_default_sqlite_storage(instance, catalog_path: Path, data_dir: Path) -> None:
    assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
    check_forwarding(instance, catalog_path, data_dir)


def test_forwarding_on_postgresql(catalog_path: Path, data_dir: Path) -> None:
    with fresh_database() as url:
        overrides = {"storage": {"postgres": {"postgres_url": url}}}
        with dg.instance_for_test(overrides=overrides) as instance:
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            check_forwarding(instance, catalog_path, data_dir)


@pytest.fixture(autouse=True)
def _no_hub_for_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_HUB_ENABLED", "false")  # the runs here publish nothing themselves
