"""failed_images_sensor and the schedules, evaluated with Dagster's build_*_context on a real instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.sensors.failed_images import failed_images_sensor
from asset_pipeline_tests.helpers import FailingGenerator, materialize, pipeline_defs


def requested_keys(request: dg.RunRequest) -> set[str]:
    subset = request.asset_graph_subset
    return {key.partition_key for key in subset.iterate_asset_partitions() if key.asset_key == IMAGES}


def partly_failed(catalog_path: Path, data_dir: Path, instance, failing: list[str], **settings) -> dg.Definitions:
    defs = pipeline_defs(catalog_path, data_dir, **settings)
    flaky = FailingGenerator(failing_ids=failing)
    assert not materialize(defs, instance, first="img-00", last="img-05", resources={"image_generator": flaky}).success
    return defs


def evaluate_sensor(defs: dg.Definitions, instance, cursor: str | None = None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        return failed_images_sensor(context)


def test_the_sensor_requests_exactly_the_failed_partitions_once(catalog_path, data_dir, instance) -> None:
    defs = partly_failed(catalog_path, data_dir, instance, ["img-01", "img-04"])
    result = evaluate_sensor(defs, instance)
    [request] = result.run_requests
    assert requested_keys(request) == {"img-01", "img-04"}
    again = evaluate_sensor(defs, instance, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason) and "already requested" in again.skip_message


def test_the_sensor_waits_while_the_circuit_is_open(fake_replicate, catalog_path, data_dir, instance) -> None:
    defs = partly_failed(catalog_path, data_dir, instance, ["img-02"], backend="replicate")
    breaker = CircuitBreaker(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), provider="replicate",
                             config=BreakerConfig(minimum_calls=1))
    breaker.record(ok=False, trial=False)
    result = evaluate_sensor(defs, instance)
    assert isinstance(result, dg.SkipReason) and "circuit is open" in result.skip_message


def test_the_sensor_backfills_once_the_cool_down_is_over(fake_replicate, catalog_path, data_dir, instance) -> None:
    """Half-open is the sensor's cue: only a request can close the circuit, so waiting for "closed"
    would wait forever."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from asset_pipeline.ledger.schema import circuit_events

    defs = partly_failed(catalog_path, data_dir, instance, ["img-02"], backend="replicate")
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as connection:
        connection.execute(insert(circuit_events), [{"provider": "replicate", "kind": kind, "created_at": long_ago}
                                                    for kind in ("failure", "open")])
    assert CircuitBreaker(engine, provider="replicate", config=BreakerConfig()).state() == "half_open"
    [request] = evaluate_sensor(defs, instance).run_requests
    assert requested_keys(request) == {"img-02"}


def test_the_sensor_skips_when_nothing_failed(catalog_path, data_dir, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    assert isinstance(evaluate_sensor(defs, instance), dg.SkipReason)


def test_the_schedule_takes_missing_and_failed_images_within_todays_budget(
    fake_replicate, catalog_path, data_dir, instance
) -> None:
    failing = ["img-01", "img-02", "img-03", "img-04"]
    defs = partly_failed(catalog_path, data_dir, instance, failing, backend="replicate", budget_daily_usd=0.007)
    # Four failed, nothing paid yet: $0.007 fits two $0.003 flux images of the four wanted.
    schedule = defs.get_schedule_def("images_within_budget")
    repository = defs.get_repository_def()
    with dg.build_schedule_context(instance=instance, repository_def=repository, resources=defs.resources) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert requested_keys(request) == {"img-01", "img-02"}
    summaries = defs.get_schedule_def("refresh_summaries_schedule")
    assert summaries.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
