"""Fitting provider outputs (PNG, WebP, JPEG of any size) to the spec's exact PNG size."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from asset_pipeline.generation.pricing import nearest_aspect_ratio
from asset_pipeline.imaging.fit import fit_to_png


def encoded(size: tuple[int, int], image_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=image_format)
    return out.getvalue()


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "JPEG"])
def test_any_format_becomes_a_png_of_the_exact_size(image_format: str) -> None:
    fitted = fit_to_png(encoded((1344, 768), image_format), width=1216, height=832)
    image = Image.open(io.BytesIO(fitted.png))
    assert (image.format, image.size) == ("PNG", (1216, 832))
    assert (fitted.original_format, fitted.original_size) == (image_format, (1344, 768))


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError, match="not a decodable image"):
        fit_to_png(b"\x89PNG but not really", width=64, height=64)


@pytest.mark.parametrize(
    ("size", "ratio"),
    [((1024, 1024), "1:1"), ((1344, 768), "16:9"), ((1536, 640), "21:9"), ((896, 1152), "4:5"), ((768, 1024), "3:4"), ((1216, 832), "3:2")],
)
def test_nearest_aspect_ratio(size: tuple[int, int], ratio: str) -> None:
    assert nearest_aspect_ratio(*size) == ratio
