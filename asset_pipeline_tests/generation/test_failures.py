"""Error classification and strategy choice, without any I/O."""

from __future__ import annotations

import random

import pytest

from asset_pipeline.generation.failures import (
    FailureClass,
    Strategy,
    backoff_seconds,
    classify,
    simplified_prompt,
)


@pytest.mark.parametrize(
    ("status", "message", "expected", "strategy"),
    [
        (429, "Request was throttled.", FailureClass.RATE_LIMITED, Strategy.WAIT),
        (500, "Internal server error", FailureClass.TRANSIENT, Strategy.BACKOFF),
        (503, "Service unavailable", FailureClass.TRANSIENT, Strategy.BACKOFF),
        (None, "cannot reach Replicate: ConnectTimeout", FailureClass.TRANSIENT, Strategy.BACKOFF),
        (None, "prediction x failed: NSFW content detected", FailureClass.CONTENT_REJECTED, Strategy.SIMPLIFY_PROMPT),
        (404, "Replicate answered HTTP 404: Model not found", FailureClass.MODEL_UNAVAILABLE, Strategy.FALLBACK_MODEL),
        (422, "Invalid version or not permitted", FailureClass.MODEL_UNAVAILABLE, Strategy.FALLBACK_MODEL),
        (None, "CUDA out of memory. Tried to allocate", FailureClass.OUT_OF_RESOURCES, Strategy.REDUCE_SIZE),
        (422, "Invalid input: prompt is required", FailureClass.INVALID_INPUT, Strategy.FAIL),
        (401, "Unauthenticated", FailureClass.INVALID_INPUT, Strategy.FAIL),
    ],
)
def test_classes_and_strategies(status, message, expected, strategy) -> None:
    classified = classify(status=status, message=message)
    assert (classified.failure, classified.strategy) == (expected, strategy)


@pytest.mark.parametrize(("problem", "expected", "strategy"), [
    ("invalid", FailureClass.INVALID_OUTPUT, Strategy.FAIL),
    # re-attaches to the same prediction (free), bounded by the journal's fetch tries
    ("unfetched", FailureClass.OUTPUT_NOT_FETCHED, Strategy.BACKOFF),
])
def test_bad_outputs_are_never_paid_for_again(problem, expected, strategy) -> None:
    """Whatever the message says (even "timed out" or a 5xx), a succeeded prediction's bad output
    is never answered with an identical paid request: invalid ones fail, unfetched ones re-attach."""
    for status, message in ((None, "output is not a decodable image"), (503, "delivery timed out")):
        classified = classify(status=status, message=message, output_problem=problem)
        assert (classified.failure, classified.strategy) == (expected, strategy)
    assert classify(status=None, message="x", output_problem=problem, budget=True).failure is FailureClass.BUDGET_EXHAUSTED


def test_budget_wins_over_everything() -> None:
    assert classify(status=429, message="x", budget=True).failure is FailureClass.BUDGET_EXHAUSTED


def test_a_second_cold_boot_timeout_means_the_model_is_unavailable() -> None:
    message = "prediction p canceled: cancelled: ran over 300 s"
    assert classify(status=None, message=message).failure is FailureClass.TRANSIENT
    assert classify(status=None, message=message, cold_boot_timeouts=1).failure is FailureClass.MODEL_UNAVAILABLE


@pytest.mark.parametrize(
    ("retry_after", "message", "wait"),
    [
        ("7", "throttled", 7.0),
        (None, "Request was throttled. Expected available in 12 seconds.", 12.0),
        (None, "rate limit; retry after 1500 ms", 1.5),
        ("Wed, 21 Oct 2026 07:28:00 GMT", "try again in 3s", 3.0),
        (None, "throttled", None),
    ],
)
def test_rate_limit_waits_come_from_retry_after_or_the_body(retry_after, message, wait) -> None:
    assert classify(status=429, message=message, retry_after=retry_after).wait_s == wait


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    samples = [backoff_seconds(attempt, base_s=1, cap_s=8, rng=rng) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(200)]
    by_attempt = [samples[i * 200:(i + 1) * 200] for i in range(6)]
    assert max(by_attempt[0]) <= 1 and max(by_attempt[2]) <= 4 and max(by_attempt[5]) <= 8
    assert max(by_attempt[5]) > 6 and min(by_attempt[5]) < 2  # jitter spreads retries out


def test_simplified_prompt_keeps_the_subject() -> None:
    assert simplified_prompt("a couple on a beach, golden hour, website hero") == "a couple on a beach"
