"""Retry strategies end to end against the fake server: safety filter, fallback chain, breaker, faults."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from asset_pipeline.errors import CircuitOpenError
from asset_pipeline.ledger.attempts import AttemptLog
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.circuit import BreakerConfig, BreakerState, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.resources.generator_config import ModelPriceConfig, default_price_config
from asset_pipeline_testing.helpers import image_statuses, materializations, materialize, pipeline_defs, write_catalog


def entries(count: int, **extra) -> list[dict]:
    return [{"id": f"img-{i:02d}", "category": "icon", "prompt": f"a key number {i}", "width": 512, "height": 512,
             "seed": i, **extra} for i in range(count)]


def generator_with(defs, **changes):
    """The definitions' generator with some fields changed (a new resource: Dagster rebuilds
    resources from their constructor arguments, so `model_copy` would not do)."""
    base = defs.resources["image_generator"]
    values = {name: getattr(base, name) for name in type(base).model_fields}
    return type(base)(**{**values, **changes})


def test_a_safety_rejection_retries_once_with_a_simplified_prompt(fake_replicate, tmp_path, data_dir, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", entries(1, prompt="a family picnic, [[nsfw]] detail"))
    result = materialize(pipeline_defs(catalog, data_dir, backend="replicate"), instance, partition="img-00")
    assert result.success
    meta = materializations(result)["img-00"]
    assert meta["strategies"] == ["simplify_prompt"] and meta["attempts"] == 2
    assert [p.input["prompt"] for p in fake_replicate.predictions.values()][-1] == "a family picnic"

    again = write_catalog(tmp_path / "d.yaml", entries(1, prompt="[[nsfw]] only"))
    failed = materialize(pipeline_defs(again, tmp_path / "d", backend="replicate"), instance, partition="img-00")
    assert "content_rejected->fail" in failed.failure_data_for_node("images").error.message


def test_an_unavailable_model_moves_down_the_fallback_chain(fake_replicate, tmp_path, data_dir, instance) -> None:
    fake_replicate.unavailable_models = {"acme/retired"}
    defs = pipeline_defs(write_catalog(tmp_path / "c.yaml", entries(1)), data_dir, backend="replicate",
                         model="acme/retired", fallback_models="black-forest-labs/flux-schnell")
    prices = {**default_price_config(), "acme/retired": ModelPriceConfig(per_image_usd=0.01, size_input="aspect_ratio")}
    result = materialize(defs, instance, partition="img-00", resources={"image_generator": generator_with(defs, prices=prices)})
    assert result.success
    meta = materializations(result)["img-00"]
    assert meta["model"] == "black-forest-labs/flux-schnell" and meta["strategies"] == ["fallback_model"]
    attempts = AttemptLog(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")).history()
    assert [(a["model"], a["failure_class"], a["strategy"]) for a in attempts] == [
        ("acme/retired", "model_unavailable", "fallback_model")
    ]
    # The next run finds the image under the catalog's own request: a cache hit, nothing sent.
    again = materialize(defs, instance, partition="img-00", resources={"image_generator": generator_with(defs, prices=prices)})
    assert materializations(again)["img-00"]["cache_hit"] is True and fake_replicate.created_total == 1


def test_random_faults_end_with_every_partition_made_and_spend_matching_the_bill(
    fake_replicate, tmp_path, data_dir, instance
) -> None:
    fake_replicate.failure_rate = 0.2
    fake_replicate.create_failure_rate = 0.2
    defs = pipeline_defs(write_catalog(tmp_path / "c.yaml", entries(20)), data_dir, backend="replicate",
                         max_attempts=8, max_concurrency=4)
    resources = {"image_generator": generator_with(defs, breaker_cooldown_s=1.0, max_wait_s=0.05)}
    result = materialize(defs, instance, first="img-00", last="img-19", resources=resources)
    statuses = image_statuses(defs, instance)
    assert statuses.materialized | statuses.failed == {f"img-{i:02d}" for i in range(20)}
    assert len(statuses.materialized) >= 18
    assert result.success == (not statuses.failed)
    ledger = BudgetLedger(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"))
    status = ledger.status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0
    assert status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)
    assert any(meta["attempts"] > 1 for meta in materializations(result).values())


def _breaker(url: str) -> CircuitBreaker:
    return CircuitBreaker(ledger_engine(url), provider="replicate",
                          config=BreakerConfig(minimum_calls=3, window_s=60, cooldown_s=1.0, half_open_calls=3))


def _fail_n(url: str, n: int) -> str:
    breaker = _breaker(url)
    for _ in range(n):
        breaker.record(ok=False, trial=breaker.before_request())
    return breaker.state()


def _state(url: str) -> str:
    return _breaker(url).state()


def test_the_breaker_opens_and_closes_across_processes(tmp_path: Path) -> None:
    import time

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        assert pool.apply(_fail_n, (url, 3)) == BreakerState.OPEN  # another process opened it
    here = _breaker(url)
    with pytest.raises(Exception, match="provider circuit open"):
        here.before_request()
    time.sleep(1.1)
    assert [here.before_request() for _ in range(3)] == [True, True, True]  # three trials after the cool-down
    with pytest.raises(Exception, match="provider circuit open"):
        here.before_request()  # everyone else waits for the trials' verdict
    here.record(ok=True, trial=True)
    assert here.state() is BreakerState.OPEN  # one success of three is no majority yet
    here.record(ok=True, trial=True)
    with context.Pool(1) as pool:
        assert pool.apply(_state, (url,)) == BreakerState.CLOSED


def test_an_outage_longer_than_the_longest_wait_fails_partitions_without_requests(
    fake_replicate, tmp_path, data_dir, instance
) -> None:
    import time

    defs = pipeline_defs(write_catalog(tmp_path / "c.yaml", entries(3)), data_dir, backend="replicate", max_outage_s=1.0)
    breaker = CircuitBreaker(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), provider="replicate",
                             config=BreakerConfig(minimum_calls=1, cooldown_s=600))
    breaker.record(ok=False, trial=False)
    started = time.monotonic()
    result = materialize(defs, instance, first="img-00", last="img-02")
    message = result.failure_data_for_node("images").error.message
    assert message.count("provider unavailable since") == 3 and "no request sent" not in message
    assert time.monotonic() - started < 30  # bounded by the outage setting, not the 600 s cool-down
    assert fake_replicate.created_total == 0
    assert CircuitOpenError.__doc__


@pytest.mark.parametrize("verdict", [True, False])
def test_partitions_wait_for_another_requests_trial_and_follow_its_verdict(
    verdict, fake_replicate, tmp_path, data_dir, instance
) -> None:
    import threading
    import time
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from asset_pipeline.ledger.schema import circuit_events

    defs = pipeline_defs(write_catalog(tmp_path / "c.yaml", entries(3)), data_dir, backend="replicate")
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    breaker = CircuitBreaker(engine, provider="replicate",
                             config=BreakerConfig(minimum_calls=1, cooldown_s=3.0, half_open_calls=1))
    breaker.record(ok=True, trial=False)  # creates the tables
    opened = datetime.now(UTC) - timedelta(seconds=10)  # its cool-down is long over
    with engine.begin() as connection:
        connection.execute(insert(circuit_events), [{"provider": "replicate", "kind": kind, "created_at": opened}
                                                    for kind in ("failure", "open")])
    assert breaker.before_request() is True  # another process holds the trial
    verdict_given = threading.Timer(1.0, breaker.record, kwargs={"ok": verdict, "trial": True})
    verdict_given.start()
    resources = {"image_generator": generator_with(defs, breaker_cooldown_s=3.0, breaker_minimum_calls=1,
                                                   breaker_half_open_calls=1, max_outage_s=12.0)}
    started = time.monotonic()
    result = materialize(defs, instance, first="img-00", last="img-02", resources=resources)
    verdict_given.join()
    assert time.monotonic() - started >= 0.9  # they waited for the verdict rather than failing at once
    if verdict:
        assert result.success and fake_replicate.created_total == 3
    else:
        # Re-opened by the verdict; the outage (10 s old) passes the 12 s limit before the next trial.
        assert result.failure_data_for_node("images").error.message.count("provider unavailable since") == 3
        assert fake_replicate.created_total == 0


def test_fallback_images_keep_the_partition_visible_and_retryable(fake_replicate, tmp_path, data_dir, instance) -> None:
    from asset_pipeline.assets.image_checks import NOT_FALLBACK
    from asset_pipeline.catalog import load_catalog
    from asset_pipeline.retry_selection import partitions_with_status

    catalog = write_catalog(tmp_path / "c.yaml", entries(2, prompt="a key [[fail]]"))
    defs = pipeline_defs(catalog, data_dir, backend="replicate", max_attempts=2, fallback_images=True)
    result = materialize(defs, instance, first="img-00", last="img-01")
    assert result.success  # every partition has an image, but...
    made = materializations(result)
    assert all(meta["fallback"] is True and "injected model failure" in meta["fallback_reason"] for meta in made.values())
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {(c.partition, c.passed) for c in checks if c.check_name == NOT_FALLBACK} == {("img-00", False), ("img-01", False)}
    assert partitions_with_status(instance, load_catalog(catalog), {"failed", "fallback"}) == ["img-00", "img-01"]
    assert not any((data_dir / "requests").glob("*.json"))  # never indexed: the next run tries again
