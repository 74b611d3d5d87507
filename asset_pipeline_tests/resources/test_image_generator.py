"""Generator resource: placeholder by default, refuses non-images, clear errors for unusable backends."""

from __future__ import annotations

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import ConfigurationError, InvalidImageError
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline_testing.helpers import BrokenBytesGenerator

SPEC = ImageSpec.model_validate({"id": "icon-1", "category": "icon", "prompt": "a key", "width": 128, "height": 64})


def test_placeholder_is_the_default_and_costs_nothing() -> None:
    generator = ImageGenerator()
    request = generator.request_for(SPEC)
    assert (request.backend, request.model) == ("placeholder", "placeholder-v1")
    pending = generator.metered.generate(request)
    assert pending.reservation is None  # free backends never touch the ledger
    assert pending.rendered.cost_usd == 0.0 and pending.rendered.png.startswith(b"\x89PNG")


def test_bytes_that_are_not_an_image_are_refused() -> None:
    generator = BrokenBytesGenerator()
    with pytest.raises(InvalidImageError, match="icon-1: backend returned not a decodable image"):
        generator.metered.generate(generator.request_for(SPEC))


def test_the_diffusers_backend_without_a_model_directory_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_DIFFUSERS_MODEL: the diffusers backend needs a local"):
        ImageGenerator(backend="diffusers").build_backend()
