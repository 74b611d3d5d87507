"""Classify a failed generation attempt and choose what to do next. Pure logic, no I/O.

    rate_limited       429                                   wait for Retry-After / the reset the body names
    transient          5xx, timeouts, connection errors      exponential backoff with jitter
    invalid_output     the provider billed an output that    fail, no retry: the identical request
                       is undecodable, a pixel bomb, far     would pay again for the same answer
                       from the size asked, or refused
                       (host, scheme, size, encoding)
    output_unfetched   the output's download failed or ran   fail for this run: the next run
                       past its deadline                     re-attaches to the prediction for free
    content_rejected   safety filter / NSFW                  simplify the prompt once, then fail
    model_unavailable  404/422 naming the model or version,  next model in the fallback chain
                       repeated cold-boot timeouts
    out_of_resources   CUDA out of memory                    lower size or steps within bounds
    invalid_input      other 4xx (401, 403, 422 on input)    fail, no retry
    budget_exhausted   a cap would be passed                 fail, no retry
    output_not_fetched a paid output could not be downloaded back off, re-attach (no new prediction);
                                                             not a provider outage for the breaker
    unusable_output    a succeeded prediction's output is    fail: an identical retry pays again
                       unusable (none, not a URL)            for the same result
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class FailureClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    CONTENT_REJECTED = "content_rejected"
    MODEL_UNAVAILABLE = "model_unavailable"
    OUT_OF_RESOURCES = "out_of_resources"
    INVALID_INPUT = "invalid_input"
    BUDGET_EXHAUSTED = "budget_exhausted"
    INVALID_OUTPUT = "invalid_output"  # undecodable, wrong size, refused (too big, foreign host)
    OUTPUT_NOT_FETCHED = "output_not_fetched"  # a download that failed or ran out of time
    UNUSABLE_OUTPUT = "unusable_output"  # succeeded with no output at all, or not a URL


class Strategy(StrEnum):
    WAIT = "wait_for_reset"
    BACKOFF = "backoff"
    SIMPLIFY_PROMPT = "simplify_prompt"
    FALLBACK_MODEL = "fallback_model"
    REDUCE_SIZE = "reduce_size_or_steps"
    FAIL = "fail"


STRATEGY_FOR = {
    FailureClass.RATE_LIMITED: Strategy.WAIT,
    FailureClass.TRANSIENT: Strategy.BACKOFF,
    FailureClass.CONTENT_REJECTED: Strategy.SIMPLIFY_PROMPT,
    FailureClass.MODEL_UNAVAILABLE: Strategy.FALLBACK_MODEL,
    FailureClass.OUT_OF_RESOURCES: Strategy.REDUCE_SIZE,
    FailureClass.INVALID_INPUT: Strategy.FAIL,
    FailureClass.BUDGET_EXHAUSTED: Strategy.FAIL,
    FailureClass.INVALID_OUTPUT: Strategy.FAIL,
    # Re-attaches to the same prediction (free); the journal bounds the tries across runs.
    FailureClass.OUTPUT_NOT_FETCHED: Strategy.BACKOFF,
    FailureClass.UNUSABLE_OUTPUT: Strategy.FAIL,
}

# Failures that say something about the provider's health (they feed the circuit breaker). Bad
# outputs count: a provider answering garbage to every request should stop being paid quickly.
# A download that failed does not: re-attaching to it on every run must not trip the breaker.
PROVIDER_FAILURES = frozenset({FailureClass.TRANSIENT, FailureClass.MODEL_UNAVAILABLE,
                               FailureClass.INVALID_OUTPUT, FailureClass.UNUSABLE_OUTPUT})
OutputProblem = Literal["invalid", "unfetched"]

_SAFETY = re.compile(r"nsfw|safety|content (policy|filter)|flagged|sensitive", re.IGNORECASE)
_OOM = re.compile(r"out of memory|CUDA error: out of memory|OutOfMemoryError", re.IGNORECASE)
_MODEL = re.compile(r"model|version", re.IGNORECASE)
_COLD_BOOT = re.compile(r"cold.?boot|timed out|ran over", re.IGNORECASE)
_RESET_IN = re.compile(r"(?:available|reset|retry|try again)\D{0,20}?(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?)\b",
                       re.IGNORECASE)


@dataclass(frozen=True)
class Classified:
    failure: FailureClass
    strategy: Strategy
    wait_s: float | None = None  # for rate limits: how long the provider asked us to wait


def classify(
    *, status: int | None, message: str, retry_after: str | None = None, budget: bool = False,
    cold_boot_timeouts: int = 0, output_problem: OutputProblem | None = None,
) -> Classified:
    """Class and strategy for one failed attempt.

    `status` is the provider's HTTP status (None for failures without one: a failed prediction,
    a bad output, a connection error); `cold_boot_timeouts` counts this image's earlier timeouts;
    `output_problem` says the prediction succeeded but its output was invalid or not fetched.
    """
    if output_problem is not None and not budget:
        failure = FailureClass.INVALID_OUTPUT if output_problem == "invalid" else FailureClass.OUTPUT_NOT_FETCHED
        return Classified(failure, STRATEGY_FOR[failure])
    failure = _failure_class(status, message, budget, cold_boot_timeouts)
    wait = _wait_seconds(retry_after, message) if failure is FailureClass.RATE_LIMITED else None
    return Classified(failure, STRATEGY_FOR[failure], wait)


def _failure_class(status: int | None, message: str, budget: bool, cold_boot_timeouts: int) -> FailureClass:
    if budget:
        return FailureClass.BUDGET_EXHAUSTED
    if status == 429:
        return FailureClass.RATE_LIMITED
    if _SAFETY.search(message):
        return FailureClass.CONTENT_REJECTED
    if _OOM.search(message):
        return FailureClass.OUT_OF_RESOURCES
    if status in (404, 422) and _MODEL.search(message):
        return FailureClass.MODEL_UNAVAILABLE
    if status is not None and 400 <= status < 500 and status not in (408, 409):
        return FailureClass.INVALID_INPUT
    if _COLD_BOOT.search(message) and cold_boot_timeouts >= 1:
        return FailureClass.MODEL_UNAVAILABLE  # a second timeout on one model: it is not coming up
    return FailureClass.TRANSIENT


def _wait_seconds(retry_after: str | None, message: str) -> float | None:
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass  # an HTTP date; fall back to the body
    match = _RESET_IN.search(message)
    if match:
        value = float(match.group(1))
        return value / 1000 if match.group(2).lower().startswith("m") else value
    return None


def backoff_seconds(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(0, ceiling)


def simplified_prompt(prompt: str) -> str:
    """A plainer prompt for a second try after a safety filter: the first clause, no style tags."""
    first = prompt.split(",")[0].strip()
    return first if first else prompt
