"""The generator resource: one budget-metered entry point in front of the configured backend.

Assets call `request_for` to turn a spec into a request (and its request hash) and `generate` to
render it. The result is checked here, whatever the backend: the bytes must decode as an image
of the requested size before anything downstream treats them as a success.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import ConfigurationError, InvalidImageError
from asset_pipeline.generation.backend import ImageBackend, RenderedImage
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.imaging.inspect import inspect_image


class ImageGenerator(dg.ConfigurableResource):
    """Generates images through one backend; shared by every partition of a run."""

    backend: Literal["placeholder", "replicate", "diffusers"] = Field(
        default="placeholder", description="Backend that renders images (ASSET_PIPELINE_BACKEND)."
    )
    model: str | None = Field(
        default=None, description="Model reference; None uses the backend's default (ASSET_PIPELINE_MODEL)."
    )
    max_concurrency: int = Field(
        default=8, ge=1, le=256, description="Images generated at once in one run (ASSET_PIPELINE_MAX_CONCURRENCY)."
    )

    _backend: ImageBackend | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._backend = self.build_backend()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def build_backend(self) -> ImageBackend:
        """The backend named by `backend`. Subclasses may return another `ImageBackend`."""
        if self.backend == "placeholder":
            return PlaceholderBackend()
        raise ConfigurationError(
            "ASSET_PIPELINE_BACKEND", f"the '{self.backend}' backend is not available in this version; use 'placeholder'"
        )

    @property
    def active_backend(self) -> ImageBackend:
        if self._backend is None:
            self._backend = self.build_backend()
        return self._backend

    def request_for(self, spec: ImageSpec) -> GenerationRequest:
        backend = self.active_backend
        return build_request(spec, backend=backend.name, model=self.model or backend.default_model)

    def generate(self, request: GenerationRequest) -> RenderedImage:
        """Render `request`; raise `GenerationError` (or a subclass) with a reason safe to log."""
        rendered = self.active_backend.render(request)
        try:
            facts = inspect_image(rendered.png)
        except ValueError as exc:
            raise InvalidImageError(request.partition_key, f"backend returned {exc}") from None
        if facts.format != "PNG" or (facts.width, facts.height) != (request.width, request.height):
            raise InvalidImageError(
                request.partition_key,
                f"backend returned a {facts.format} of {facts.width}x{facts.height}, "
                f"expected a PNG of {request.width}x{request.height}",
            )
        return rendered
