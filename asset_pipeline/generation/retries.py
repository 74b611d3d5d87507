"""Per-image retry decisions: classify a `GenerationError`, pick the next request and the wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from asset_pipeline.errors import (
    BudgetExhaustedError,
    GenerationError,
    InvalidImageError,
    OutputNotFetched,
    OutputRefused,
    ProviderError,
)
from asset_pipeline.generation.failures import (
    STRATEGY_FOR,
    Classified,
    FailureClass,
    OutputProblem,
    backoff_seconds,
    classify,
    simplified_prompt,
)
from asset_pipeline.generation.request import GenerationRequest

MIN_STEPS = 10  # never go below this many steps when retrying after running out of memory


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    model: str
    failure_class: str
    strategy: str
    detail: str


@dataclass(frozen=True)
class RetryNotice:
    """One failed attempt, as the run log tells it: `wait_s` before the next one, None if none follows."""

    partition_key: str
    attempt: int
    failure_class: str
    strategy: str
    error: str
    wait_s: float | None

    def line(self) -> str:
        after = "no further attempt" if self.wait_s is None else f"next attempt in {self.wait_s:.1f} s"
        return (f"partition {self.partition_key}: attempt {self.attempt} failed "
                f"({self.failure_class}, strategy {self.strategy}): {self.error}; {after}")


def summarize_attempts(history: list[AttemptRecord]) -> str:
    """"after 3 attempt(s): transient->backoff, transient->backoff, transient->fail"."""
    tried = ", ".join(f"{a.failure_class}->{a.strategy}" for a in history)
    return f"after {len(history)} attempt(s): {tried}"


class BackoffSettings(Protocol):
    @property
    def backoff_base_s(self) -> float: ...
    @property
    def backoff_cap_s(self) -> float: ...
    @property
    def max_wait_s(self) -> float: ...


def classify_error(error: GenerationError, history: list[AttemptRecord]) -> Classified:
    # Set by the generator and backends from what they know, not from message patterns.
    if getattr(error, "input_error", False):
        return Classified(FailureClass.INVALID_INPUT, STRATEGY_FOR[FailureClass.INVALID_INPUT])
    if getattr(error, "final", False):
        return Classified(FailureClass.UNUSABLE_OUTPUT, STRATEGY_FOR[FailureClass.UNUSABLE_OUTPUT])
    timeouts = sum(1 for attempt in history if "ran over" in attempt.detail)
    return classify(
        status=getattr(error, "status", None),
        message=error.reason,
        retry_after=error.retry_after if isinstance(error, ProviderError) else None,
        budget=isinstance(error, BudgetExhaustedError),
        cold_boot_timeouts=timeouts,
        output_problem=_output_problem(error),
    )


def _output_problem(error: GenerationError) -> OutputProblem | None:
    if isinstance(error, (InvalidImageError, OutputRefused)):
        return "invalid"
    if isinstance(error, OutputNotFetched):
        return "unfetched"
    return None


def next_request(
    request: GenerationRequest, classified: Classified, history: list[AttemptRecord], fallback_models: list[str]
) -> GenerationRequest | None:
    """The request to try next, or None when this class of failure has no strategy left."""
    failure = classified.failure
    if failure in (FailureClass.RATE_LIMITED, FailureClass.TRANSIENT, FailureClass.OUTPUT_NOT_FETCHED):
        return request
    if failure is FailureClass.CONTENT_REJECTED:
        already = any(a.failure_class == FailureClass.CONTENT_REJECTED for a in history)
        simpler = simplified_prompt(request.prompt)
        return None if already or simpler == request.prompt else replace(request, prompt=simpler)
    if failure is FailureClass.MODEL_UNAVAILABLE:
        tried = {a.model for a in history} | {request.model}
        remaining = [model for model in fallback_models if model not in tried]
        return replace(request, model=remaining[0]) if remaining else None
    if failure is FailureClass.OUT_OF_RESOURCES:
        # Fewer denoising steps need less memory at the same size; the stored image keeps the spec's size.
        fewer = max(MIN_STEPS, request.steps // 2)
        return replace(request, steps=fewer) if fewer < request.steps else None
    return None  # invalid input, budget


def wait_before_retry(classified: Classified, attempt: int, settings: BackoffSettings) -> float:
    if classified.failure is FailureClass.RATE_LIMITED and classified.wait_s is not None:
        return min(classified.wait_s, settings.max_wait_s)
    if classified.failure in (FailureClass.RATE_LIMITED, FailureClass.TRANSIENT, FailureClass.OUTPUT_NOT_FETCHED):
        return backoff_seconds(attempt, base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
    return 0.0
