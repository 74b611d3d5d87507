"""The breaker's pure state rules: it opens on the failure rate over a window with a minimum of
calls (not on a run of failures), lets several trials through when half-open, and closes on a
majority of trial successes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asset_pipeline.ledger.circuit import (
    TRIAL_VERDICT_WAIT_S,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    breaker_state,
    free_trial_slots,
    open_for_s,
    should_open,
    trial_in_flight,
    trial_verdict,
    unavailable_since,
)

CONFIG = BreakerConfig(failure_rate=0.5, window_calls=10, minimum_calls=4, window_s=60, cooldown_s=30, half_open_calls=3)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def events(*pairs: tuple[str, float]) -> list[BreakerEvent]:
    return [BreakerEvent(kind, at(seconds)) for kind, seconds in pairs]


def calls(pattern: str, start: float = 0) -> list[tuple[str, float]]:
    """'FFS.' -> failure, failure, success, one second apart."""
    return [("failure" if c == "F" else "success", start + i) for i, c in enumerate(pattern)]


def test_too_few_calls_never_open_the_circuit_however_many_failed() -> None:
    assert not should_open(events(*calls("FFF")), at(3), CONFIG)
    assert should_open(events(*calls("FFFF")), at(4), CONFIG)


def test_it_opens_on_the_failure_rate_not_on_consecutive_failures() -> None:
    # 30% random faults: runs of failures happen, the rate stays below the threshold.
    assert not should_open(events(*calls("SFFFSSSSSS")), at(10), CONFIG)
    assert should_open(events(*calls("SFSFSFSFSF")), at(10), CONFIG)  # 50% of the window


def test_the_window_slides_over_the_last_calls_and_the_last_seconds() -> None:
    old_failures = calls("FFFFFFFFFF")
    assert not should_open(events(*old_failures, *calls("SSSSSSSSSS", 10), ("failure", 20)), at(21), CONFIG)
    assert not should_open(events(*calls("FFFFF"), ("failure", 100)), at(100), CONFIG)  # four are older than 60 s


def test_a_close_starts_a_new_window() -> None:
    history = events(*calls("FFFF"), ("open", 4), ("trial", 40), ("trial_ok", 41), ("trial", 42), ("trial_ok", 43),
                     ("close", 43), ("failure", 44))
    assert breaker_state(history, at(45), CONFIG) is BreakerState.CLOSED
    assert not should_open(history, at(45), CONFIG)


def test_an_open_circuit_counts_down_its_cool_down_then_lets_several_trials_through() -> None:
    history = events(("failure", 0), ("open", 0))
    assert breaker_state(history, at(10), CONFIG) is BreakerState.OPEN
    assert open_for_s(history, at(10), CONFIG) == 20.0
    assert breaker_state(history, at(30), CONFIG) is BreakerState.HALF_OPEN
    assert free_trial_slots(history, at(30), CONFIG) == 3
    claimed = history + events(("trial", 30), ("trial", 30), ("trial", 31))
    assert trial_in_flight(claimed, at(32), CONFIG)
    assert breaker_state(claimed, at(32), CONFIG) is BreakerState.OPEN  # all three slots taken


def test_a_majority_of_trial_successes_closes_and_a_lost_majority_reopens() -> None:
    phase = [("open", 0), ("trial", 31), ("trial", 31), ("trial", 31)]
    assert trial_verdict(events(*phase, ("trial_ok", 32)), CONFIG) is None
    assert trial_verdict(events(*phase, ("trial_ok", 32), ("trial_failed", 32)), CONFIG) is None
    assert trial_verdict(events(*phase, ("trial_ok", 32), ("trial_ok", 33)), CONFIG) == "close"
    assert trial_verdict(events(*phase, ("trial_failed", 32), ("trial_failed", 33)), CONFIG) == "open"
    reopened = events(*phase, ("trial_failed", 32), ("trial_failed", 33), ("open", 33))
    assert breaker_state(reopened, at(34), CONFIG) is BreakerState.OPEN and open_for_s(reopened, at(34), CONFIG) == 29.0


def test_a_trial_lost_with_its_process_frees_its_slot_after_a_cool_down() -> None:
    history = events(("open", 0), ("trial", 31), ("trial", 31), ("trial", 31))
    assert free_trial_slots(history, at(40), CONFIG) == 0
    assert free_trial_slots(history, at(62), CONFIG) == 3
    # Requests waiting past the longest outage trust an unanswered trial longer than its slot is
    # kept: a trial slower than the cool-down is still coming back with a verdict.
    assert trial_in_flight(history, at(62), CONFIG)
    assert not trial_in_flight(history, at(31 + TRIAL_VERDICT_WAIT_S + 1), CONFIG)


def test_a_trial_slower_than_a_short_cool_down_is_still_waited_for() -> None:
    short = BreakerConfig(cooldown_s=1.0)
    history = events(("open", 0), ("trial", 1), ("trial", 1), ("trial", 1))
    assert trial_in_flight(history, at(5), short)  # CI saw the waiting partitions give up here


def test_the_outage_is_dated_from_its_first_opening() -> None:
    history = events(("open", 0), ("close", 5), ("open", 100), ("trial", 131), ("trial_failed", 132), ("open", 132))
    assert unavailable_since(history) == at(100)
    assert unavailable_since(events(("open", 0), ("close", 5))) is None
