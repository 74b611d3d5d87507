"""The breaker's pure state rules: open for its cool-down, then one trial whose verdict the others await."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asset_pipeline.ledger.circuit import (
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    breaker_state,
    open_for_s,
    trial_in_flight,
)

CONFIG = BreakerConfig(failure_threshold=3, window_s=60, cooldown_s=30)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def events(*pairs: tuple[str, float]) -> list[BreakerEvent]:
    return [BreakerEvent(kind, at(seconds)) for kind, seconds in pairs]


def test_a_closed_circuit_is_never_open_for_any_time() -> None:
    history = events(("failure", 0), ("success", 1))
    assert breaker_state(history, at(2), CONFIG) is BreakerState.CLOSED
    assert open_for_s(history, at(2), CONFIG) == 0.0 and not trial_in_flight(history, at(2), CONFIG)


def test_an_open_circuit_counts_down_its_cool_down_then_lets_one_trial_through() -> None:
    history = events(("failure", 0), ("open", 0))
    assert breaker_state(history, at(10), CONFIG) is BreakerState.OPEN
    assert open_for_s(history, at(10), CONFIG) == 20.0
    assert breaker_state(history, at(30), CONFIG) is BreakerState.HALF_OPEN
    assert open_for_s(history, at(30), CONFIG) == 0.0 and not trial_in_flight(history, at(30), CONFIG)


def test_a_trial_in_flight_holds_the_circuit_open_until_its_verdict_or_a_cool_down() -> None:
    history = events(("open", 0), ("trial", 31))
    assert trial_in_flight(history, at(32), CONFIG)
    assert breaker_state(history, at(32), CONFIG) is BreakerState.OPEN
    assert open_for_s(history, at(32), CONFIG) == 29.0
    # The trial's process died without a verdict: after another cool-down the next one may try.
    assert not trial_in_flight(history, at(61), CONFIG)
    assert breaker_state(history, at(61), CONFIG) is BreakerState.HALF_OPEN


def test_the_trials_verdict_closes_or_reopens_the_circuit() -> None:
    closed = events(("open", 0), ("trial", 31), ("success", 33), ("close", 33))
    assert breaker_state(closed, at(34), CONFIG) is BreakerState.CLOSED and not trial_in_flight(closed, at(34), CONFIG)
    reopened = events(("open", 0), ("trial", 31), ("failure", 33), ("open", 33))
    assert breaker_state(reopened, at(34), CONFIG) is BreakerState.OPEN
    assert not trial_in_flight(reopened, at(34), CONFIG) and open_for_s(reopened, at(34), CONFIG) == 29.0
