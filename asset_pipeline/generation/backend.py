"""The interface every backend implements (placeholder now; Replicate and diffusers later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from asset_pipeline.generation.request import GenerationRequest


@dataclass(frozen=True)
class RenderedImage:
    """A backend's answer: PNG bytes plus what it cost and how."""

    png: bytes
    model: str
    cost_usd: float = 0.0
    prediction_id: str | None = None
    attempts: int = 1


class ImageBackend(ABC):
    """Turns one `GenerationRequest` into PNG bytes. Implementations must be thread-safe."""

    name: str

    @property
    @abstractmethod
    def default_model(self) -> str:
        """The model used when neither the spec nor the settings name one."""

    @abstractmethod
    def render(self, request: GenerationRequest) -> RenderedImage:
        """Produce the image; raise `GenerationError` with a reason that is safe to log."""

    def close(self) -> None:
        """Release clients, pipelines or GPU memory. The default holds nothing."""
