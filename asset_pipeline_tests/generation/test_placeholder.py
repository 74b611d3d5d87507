"""Placeholder backend: deterministic bytes, visibly different images per spec, exact size, free."""

from __future__ import annotations

import io

from PIL import Image, ImageChops

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.generation.placeholder import PLACEHOLDER_MODEL, PlaceholderBackend
from asset_pipeline.generation.request import build_request


def request(**changes: object):
    spec = ImageSpec.model_validate({"id": "icon-1", "category": "icon", "prompt": "a key", "width": 256, "height": 128, **changes})
    return build_request(spec, backend="placeholder", model=PLACEHOLDER_MODEL)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_same_spec_and_seed_give_identical_bytes() -> None:
    backend = PlaceholderBackend()
    first, second = backend.render(request()), backend.render(request())
    assert first.png == second.png
    assert first.cost_usd == 0.0 and first.model == PLACEHOLDER_MODEL


def test_different_specs_give_visibly_different_images() -> None:
    backend = PlaceholderBackend()
    base = decode(backend.render(request()).png).convert("RGB")
    for changed in (request(seed=99), request(prompt="a lock"), request(id="icon-2")):
        other = decode(backend.render(changed).png).convert("RGB")
        difference = ImageChops.difference(base, other).convert("L")
        changed_pixels = sum(difference.histogram()[17:])
        assert changed_pixels > base.width * base.height * 0.05


def test_renders_a_png_of_the_requested_size() -> None:
    image = decode(PlaceholderBackend().render(request(width=640, height=448)).png)
    assert (image.format, image.size) == ("PNG", (640, 448))
