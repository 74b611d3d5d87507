"""The next request after each class of failure (pure: no provider involved)."""

from __future__ import annotations

from asset_pipeline.generation.failures import classify
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.generation.retries import AttemptRecord, next_request

REQUEST = GenerationRequest("p", "icon", "replicate", "a/primary", "a house, warm light", "", 512, 512, 1, 40, 7.0)


def after(status, message, history=(), fallbacks=("b/second", "c/third")):
    return next_request(REQUEST, classify(status=status, message=message), list(history), list(fallbacks))


def test_transient_and_rate_limited_retry_the_same_request() -> None:
    assert after(500, "boom") == REQUEST and after(429, "slow down") == REQUEST


def test_fallback_chain_moves_on_and_ends() -> None:
    assert after(404, "model not found").model == "b/second"
    tried = [AttemptRecord(1, "b/second", "model_unavailable", "fallback_model", "model not found")]
    assert after(404, "model not found", tried).model == "c/third"
    assert after(404, "model not found", fallbacks=()) is None


def test_safety_rejection_simplifies_once() -> None:
    assert after(None, "NSFW content detected").prompt == "a house"
    once = [AttemptRecord(1, "a/primary", "content_rejected", "simplify_prompt", "nsfw")]
    assert after(None, "NSFW content detected", once) is None


def test_out_of_memory_halves_the_steps_down_to_a_floor() -> None:
    assert after(None, "CUDA out of memory").steps == 20
    floor = GenerationRequest("p", "icon", "diffusers", "m", "x", "", 512, 512, 1, 10, 7.0)
    assert next_request(floor, classify(status=None, message="CUDA out of memory"), [], []) is None


def test_invalid_input_and_budget_have_no_next_request() -> None:
    assert after(401, "Unauthenticated") is None
    assert next_request(REQUEST, classify(status=None, message="x", budget=True), [], []) is None


def test_a_failed_attempt_is_one_readable_log_line() -> None:
    from asset_pipeline.generation.retries import RetryNotice

    waiting = RetryNotice("img-03", 2, "transient", "backoff", "Replicate answered HTTP 503: down", wait_s=1.25)
    assert waiting.line() == ("partition img-03: attempt 2 failed (transient, strategy backoff): "
                              "Replicate answered HTTP 503: down; next attempt in 1.2 s")
    last = RetryNotice("img-03", 6, "transient", "fail", "prediction p1 failed: boom", wait_s=None)
    assert last.line().endswith("; no further attempt") and "\n" not in last.line()
