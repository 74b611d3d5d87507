"""A remote backend held to the deployment's provider limits: an in-flight slot, then a create slot.

The order matters: a request first waits for room under the adaptive concurrency limit, and only
then for its turn in the shared create rate, so requests that waited long for a slot cannot all
fire at once when slots free up. How the provider answered feeds the adaptive limit.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from asset_pipeline.errors import CreateOutcomeUnknown, GenerationError, ProviderError, RenderCancelled
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.limits.aimd import Outcome
from asset_pipeline.limits.shared import AdaptiveConcurrency

_OVERLOADED = frozenset({408, 500, 502, 503, 504, 529})


class RateLike:
    """What `TokenBucket` and `SharedRateLimit` both are."""

    def acquire(self, cancelled: threading.Event | None = None) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


def outcome_of(error: BaseException) -> Outcome:
    """What a failed render says about the provider's load (pure)."""
    if isinstance(error, ProviderError):
        if error.status == 429:
            return "throttled"
        if error.status in _OVERLOADED or error.status is None or isinstance(error, CreateOutcomeUnknown):
            return "overloaded"  # a timeout, a dropped connection, a server error
    return "neutral"  # the model failed, the output was refused, the run was cancelled: not load


class LimitedBackend(ImageBackend):
    """`inner`, with every render inside an adaptive in-flight slot and a shared create-rate slot."""

    def __init__(self, inner: ImageBackend, *, rate: RateLike, concurrency: AdaptiveConcurrency):
        self.inner, self.rate, self.concurrency = inner, rate, concurrency
        self.name, self.is_paid = inner.name, inner.is_paid

    @property
    def default_model(self) -> str:
        return self.inner.default_model

    def __getattr__(self, name: str) -> Any:
        """Anything else is the inner backend's (e.g. ReplicateBackend.model_inputs)."""
        if name == "inner":  # not set yet (copy, unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        try:
            with self.concurrency.slot(session.cancelled) as slot:
                if slot is None or not self.rate.acquire(session.cancelled):
                    raise RenderCancelled(request.partition_key, "run terminated while waiting for the provider's limits")
                slot.restart_clock()  # the provider's latency, not the wait for a create slot
                try:
                    rendered = self.inner.render(request, session)
                except GenerationError as exc:
                    slot.report(outcome_of(exc))
                    raise
                slot.report("ok")
                return rendered
        except GenerationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the limits' store (database, Redis) failed; nothing was sent
            raise GenerationError(request.partition_key, "the shared provider limits are unavailable "
                                  f"({exc.__class__.__name__}); nothing was sent to the provider") from None

    def reservation_usd(self, model: str) -> float:
        return self.inner.reservation_usd(model)

    def check_models(self, models: list[str]) -> None:
        self.inner.check_models(models)

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        return self.inner.find_prediction(request, created_after=created_after, exclude=exclude)

    def billed_for(self, request: GenerationRequest, prediction_id: str) -> float | None:
        return self.inner.billed_for(request, prediction_id)

    def close(self) -> None:
        self.inner.close()
