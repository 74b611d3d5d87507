"""The interface every backend implements, and what a paid backend hands back to the generator."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from asset_pipeline.generation.progress import ProgressCallback
from asset_pipeline.generation.request import GenerationRequest


@dataclass(frozen=True)
class RenderedImage:
    """A backend's answer: PNG bytes plus what it cost and how."""

    png: bytes
    model: str
    cost_usd: float = 0.0
    prediction_id: str | None = None
    original: bytes | None = None  # the provider's own file, kept beside the fitted PNG
    original_format: str | None = None
    billing_note: str | None = None  # why `cost_usd` is not simply the provider's own report


@dataclass
class RenderSession:
    """What the generator lends a backend for one request.

    `resume_prediction_id` names a journaled prediction to re-attach to instead of creating one;
    `on_created` must be called with a new prediction's id as soon as the provider returns it;
    `cancelled` is set when the run is terminated; `on_progress` receives progress reports and
    must not block.
    """

    resume_prediction_id: str | None = None
    on_created: Callable[[str], None] = lambda prediction_id: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_progress: ProgressCallback | None = None


class ImageBackend(ABC):
    """Turns one `GenerationRequest` into PNG bytes. Implementations must be thread-safe."""

    name: str
    is_paid: bool = False

    @property
    @abstractmethod
    def default_model(self) -> str:
        """The model used when neither the spec nor the settings name one."""

    @abstractmethod
    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        """Produce the image; raise `GenerationError` with a reason that is safe to log."""

    @property
    def request_variant(self) -> str:
        """What else changes the pixels and so belongs in the request hash (e.g. a workflow's hash)."""
        return ""

    def reservation_usd(self, model: str) -> float:
        """What to set aside before rendering with `model` (0 for free backends)."""
        return 0.0

    def check_models(self, models: list[str]) -> None:
        """Raise `ConfigurationError` if any of `models` cannot be used (e.g. has no price)."""

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        """The id of a live provider-side job for exactly `request` created after `created_after`,
        other than the `exclude`d ones (already journaled for a reservation).

        Local backends create nothing remote, so there is nothing to find.
        """
        return None

    def billed_for(self, request: GenerationRequest, prediction_id: str) -> float | None:
        """What the provider billed for a finished provider-side job, or None while it is not
        finished or cannot be known. Local backends create nothing remote, so nothing to bill."""
        return None

    def close(self) -> None:
        """Release clients, pipelines or GPU memory. The default holds nothing."""
