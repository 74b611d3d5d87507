"""failed_images_sensor and the schedules, evaluated with Dagster's build_*_context on a real instance.

Fast unit tests of the decisions only; asset_pipeline_tests/test_daemon_paths.py proves the daemon
accepts and runs what they return."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.retry_selection import (
    ESTIMATED_COST_TAG,
    PARTITION_COUNT_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    contiguous_ranges,
)
from asset_pipeline.sensors.failed_images import failed_images_sensor
from asset_pipeline_testing.helpers import FailingGenerator, materialize, pipeline_defs


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
    assert failed_images_sensor.asset_selection is not None  # what lets the daemon accept a backfill request
    result = evaluate_sensor(defs, instance)
    [request] = result.run_requests
    assert requested_keys(request) == {"img-01", "img-04"} and request.requires_backfill_daemon()
    again = evaluate_sensor(defs, instance, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason) and "already re-run once" in again.skip_message
    assert "img-01, img-04" in again.skip_message


def test_the_sensor_requests_only_new_failures_and_forgets_fixed_ones(catalog_path, data_dir, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    flaky = FailingGenerator(failing_ids=["img-01", "img-04"])
    assert not materialize(defs, instance, first="img-00", last="img-04", resources={"image_generator": flaky}).success
    first = evaluate_sensor(defs, instance)
    # img-01 fails again (left for a person), img-04 is fixed, img-05 fails for the first time.
    flaky = FailingGenerator(failing_ids=["img-01", "img-05"])
    assert not materialize(defs, instance, first="img-01", last="img-05", resources={"image_generator": flaky}).success
    second = evaluate_sensor(defs, instance, cursor=first.cursor)
    [request] = second.run_requests
    assert requested_keys(request) == {"img-05"}
    assert json.loads(second.cursor) == {"requested": ["img-01", "img-05"]}  # img-04 forgotten: it is fixed
    assert materialize(defs, instance, first="img-01", last="img-05").success
    done = evaluate_sensor(defs, instance, cursor=second.cursor)
    assert done.skip_reason.skip_message == "no failed image partitions" and json.loads(done.cursor) == {"requested": []}


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
    assert evaluate_sensor(defs, instance).skip_reason.skip_message == "no failed image partitions"


def evaluate_schedule(defs: dg.Definitions, instance):
    repository = defs.get_repository_def()
    schedule = repository.get_schedule_def("images_within_budget")
    with dg.build_schedule_context(instance=instance, repository_def=repository, resources=defs.resources) as context:
        return schedule.evaluate_tick(context)


def test_the_schedule_takes_missing_and_failed_images_within_todays_budget(
    fake_replicate, catalog_path, data_dir, instance
) -> None:
    failing = ["img-01", "img-02", "img-03", "img-04"]
    defs = partly_failed(catalog_path, data_dir, instance, failing, backend="replicate", budget_daily_usd=0.007)
    # Four failed, nothing paid yet: $0.007 fits two $0.003 flux images of the four wanted.
    [request] = evaluate_schedule(defs, instance).run_requests
    assert request.tags[RANGE_START_TAG] == "img-01" and request.tags[RANGE_END_TAG] == "img-02"
    assert request.tags[PARTITION_COUNT_TAG] == "2" and request.tags[ESTIMATED_COST_TAG] == "0.0060"
    assert request.run_key == "img-01...img-02" and request.asset_graph_subset is None
    repository = defs.get_repository_def()
    for name in ("refresh_summaries_schedule", "images_within_budget"):
        assert repository.get_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_schedule_requests_one_range_run_per_contiguous_range(catalog_path, data_dir, instance) -> None:
    defs = partly_failed(catalog_path, data_dir, instance, ["img-01", "img-02", "img-04"])
    requests = evaluate_schedule(defs, instance).run_requests
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG], r.tags[PARTITION_COUNT_TAG]) for r in requests] == [
        ("img-01", "img-02", "2"), ("img-04", "img-04", "1")]


def test_the_schedule_skips_when_nothing_is_wanted(catalog_path, data_dir, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    assert materialize(defs, instance, first="img-00", last="img-05").success
    nothing = evaluate_schedule(defs, instance)
    assert not nothing.run_requests and "every image is materialized" in nothing.skip_message


def test_the_schedule_skips_when_nothing_fits_the_budget(fake_replicate, catalog_path, data_dir, instance) -> None:
    poor = partly_failed(catalog_path, data_dir, instance, ["img-03"], backend="replicate", budget_daily_usd=0.001)
    skipped = evaluate_schedule(poor, instance)
    assert not skipped.run_requests
    assert "1 image(s) wanted (img-03) but none fits the remaining budget of $0.0010" in skipped.skip_message


def test_contiguous_ranges_follow_the_partition_order() -> None:
    order = ["a", "b", "c", "d", "e"]
    assert contiguous_ranges(["e", "a", "b", "d"], order) == [["a", "b"], ["d", "e"]]
    assert contiguous_ranges([], order) == []
    assert contiguous_ranges(["a", "b", "c", "d", "e"], order, max_size=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert contiguous_ranges(["a", "b", "d", "e"], order, max_size=3) == [["a", "b"], ["d", "e"]]


def test_the_schedule_splits_its_runs_like_a_backfill(catalog_path, data_dir, instance) -> None:
    """ASSET_PIPELINE_PARTITIONS_PER_RUN splits a scheduled range as BackfillPolicy.multi_run splits a backfill."""
    defs = partly_failed(catalog_path, data_dir, instance, ["img-00", "img-01", "img-02", "img-03", "img-05"],
                         partitions_per_run=2)
    requests = evaluate_schedule(defs, instance).run_requests
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG], r.tags[PARTITION_COUNT_TAG]) for r in requests] == [
        ("img-00", "img-01", "2"), ("img-02", "img-03", "2"), ("img-05", "img-05", "1")]
    assert len({r.run_key for r in requests}) == 3


def test_the_schedule_fills_the_caps_the_runs_recorded_not_its_own_environment(
    fake_replicate, catalog_path, data_dir, instance
) -> None:
    """The last run was held to a $0.007 daily cap and recorded it; a schedule evaluated where the
    environment says $10 a day still fills only the recorded $0.007 (the caps the runs are held to)."""
    from asset_pipeline.ledger.money import BudgetCaps
    from asset_pipeline.ledger.recorded_caps import record_caps
    from asset_pipeline_testing.helpers import pipeline_defs

    partly_failed(catalog_path, data_dir, instance, ["img-01", "img-02", "img-03", "img-04"], backend="replicate")
    record_caps(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), run_id="tight", caps=BudgetCaps(20, 0.007, 20))
    generous = pipeline_defs(catalog_path, data_dir, backend="replicate", budget_daily_usd=10.0)
    [request] = evaluate_schedule(generous, instance).run_requests
    assert request.tags[PARTITION_COUNT_TAG] == "2" and request.tags[ESTIMATED_COST_TAG] == "0.0060"


def test_the_sensor_skips_when_the_recorded_daily_cap_is_spent(fake_replicate, catalog_path, data_dir, instance) -> None:
    from asset_pipeline.ledger.money import BudgetCaps
    from asset_pipeline.ledger.recorded_caps import record_caps
    from asset_pipeline_testing.helpers import pipeline_defs

    partly_failed(catalog_path, data_dir, instance, ["img-02"], backend="replicate")
    # The latest run was held to a daily cap of nothing (the operator lowered it); the sensor's own
    # environment still says $10 a day.
    record_caps(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), run_id="tight", caps=BudgetCaps(20, 0.0, 20))
    result = evaluate_sensor(pipeline_defs(catalog_path, data_dir, backend="replicate"), instance)
    assert isinstance(result, dg.SkipReason) and "no budget remains today" in result.skip_message
    assert "recorded by run tight" in result.skip_message
