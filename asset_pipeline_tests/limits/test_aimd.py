"""The adaptive concurrency limit's pure arithmetic (aimd.py) and the shared rate's (gcra.py): no sockets."""

import pytest

from asset_pipeline.errors import CreateOutcomeUnknown, GenerationError, ProviderError
from asset_pipeline.limits.aimd import AimdConfig, AimdState, initial_state, observe, within
from asset_pipeline.limits.gcra import reserve
from asset_pipeline.limits.limited_backend import outcome_of

CONFIG = AimdConfig(max_limit=32)


def test_starts_at_the_ceiling_and_halves_on_a_429():
    state = initial_state(CONFIG)
    assert state.slots == 32
    state = observe(state, CONFIG, outcome="throttled", latency_s=None, now=100.0)
    assert state.slots == 16


def test_many_429s_in_one_round_trip_halve_once():
    state = observe(initial_state(CONFIG), CONFIG, outcome="ok", latency_s=2.0, now=0.0)
    for moment in (10.0, 10.5, 11.0, 11.9):  # cooldown = baseline latency = 2 s
        state = observe(state, CONFIG, outcome="throttled", latency_s=None, now=moment)
    assert state.slots == 16
    state = observe(state, CONFIG, outcome="overloaded", latency_s=None, now=12.1)
    assert state.slots == 8


def test_additive_increase_of_about_one_per_round_trip_up_to_the_ceiling():
    state = AimdState(limit=8.0, baseline_s=1.0)
    for _ in range(8):
        state = observe(state, CONFIG, outcome="ok", latency_s=1.0, now=50.0)
    assert state.slots == 8 or state.slots == 9
    assert 8.9 < state.limit < 9.1
    for _ in range(5000):
        state = observe(state, CONFIG, outcome="ok", latency_s=1.0, now=50.0)
    assert state.limit == 32


def test_never_below_the_floor():
    state = AimdState(limit=1.5)
    for moment in range(0, 100, 5):
        state = observe(state, CONFIG, outcome="throttled", latency_s=None, now=float(moment))
    assert state.limit == 1.0 and state.slots == 1


def test_a_slowdown_backs_off_then_the_new_pace_becomes_normal_and_the_limit_recovers():
    state = AimdState(limit=16.0, baseline_s=1.0)
    state = observe(state, CONFIG, outcome="ok", latency_s=6.0, now=100.0)
    assert state.slots == 8  # six times slower than usual: pushed back
    limits = []
    for index in range(200):
        state = observe(state, CONFIG, outcome="ok", latency_s=6.0, now=101.0 + index)
        limits.append(state.limit)
    assert min(limits) >= 2  # it backed off a few times, not to nothing
    assert limits[-1] > limits[40] and state.baseline_s == pytest.approx(6.0, rel=0.05)


def test_neutral_outcomes_change_nothing_and_bounds_are_reapplied():
    state = AimdState(limit=5.0, baseline_s=1.0)
    assert observe(state, CONFIG, outcome="neutral", latency_s=None, now=1.0) == state
    assert within(AimdState(limit=500.0), CONFIG).limit == 32
    with pytest.raises(ValueError):
        AimdConfig(max_limit=0.5)


def test_outcome_of_provider_errors():
    assert outcome_of(ProviderError("k", "throttled", status=429)) == "throttled"
    assert outcome_of(ProviderError("k", "down", status=503)) == "overloaded"
    assert outcome_of(ProviderError("k", "timed out")) == "overloaded"
    assert outcome_of(CreateOutcomeUnknown("k", "lost", status=None)) == "overloaded"
    assert outcome_of(ProviderError("k", "bad input", status=422)) == "neutral"
    assert outcome_of(GenerationError("k", "model failed")) == "neutral"


def test_gcra_spaces_requests_and_allows_the_burst():
    tat, waits = 0.0, []
    for _ in range(5):
        tat, wait = reserve(tat, 100.0, interval=0.1)
        waits.append(round(wait, 6))
    assert waits == [0.0, 0.1, 0.2, 0.3, 0.4]
    tat, waits = 0.0, []
    for _ in range(4):
        tat, wait = reserve(tat, 100.0, interval=0.1, burst=3)
        waits.append(round(wait, 6))
    assert waits == [0.0, 0.0, 0.0, 0.1]
    # Idle time does not bank more than the burst.
    tat, wait = reserve(tat, 1000.0, interval=0.1, burst=3)
    assert wait == 0.0 and tat == pytest.approx(1000.1)
