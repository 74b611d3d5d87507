"""Untrusted image bytes: the header is read first, and pixel bombs, garbage and unexpected formats
are refused with a clear message before anything is decoded (peak memory measured in a child)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from asset_pipeline.errors import ImageRefused
from asset_pipeline.imaging.bounded import decode_bounded, read_header
from asset_pipeline.imaging.fit import fit_to_png
from asset_pipeline.imaging.inspect import inspect_image
from asset_pipeline_testing.fake_replicate.server import pixel_bomb

BOMB_SIDE = 13000
DECODED_BYTES = BOMB_SIDE * BOMB_SIDE * 4  # Pillow keeps RGB as four bytes a pixel: 676 MB

# Fits the bomb in a fresh interpreter and prints its peak RSS, so the test bounds the memory.
CHILD = """
import json, resource, sys
from asset_pipeline.imaging.fit import fit_to_png
from asset_pipeline_testing.fake_replicate.server import pixel_bomb
data = pixel_bomb()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    fit_to_png(data, width=1024, height=1024, max_pixels=4 * 1024 * 1024)
    outcome = "fitted"
except ValueError as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "before_kb": before,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def encoded(size: tuple[int, int], image_format: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(out, format=image_format)
    return out.getvalue()


def test_the_header_is_read_without_decoding_a_pixel_bomb() -> None:
    data = pixel_bomb()
    assert len(data) < 1_000_000  # small on the wire
    header = read_header(data)
    assert (header.format, header.width, header.height) == ("PNG", BOMB_SIDE, BOMB_SIDE)
    with pytest.raises(ImageRefused, match=r"13000x13000 \(169.0 MP\), over the 4.2 MP allowed for it; refused before decoding"):
        decode_bounded(data, max_pixels=4 * 1024 * 1024)


def test_a_pixel_bomb_is_refused_with_bounded_memory() -> None:
    """A full decode would add 676 MB; the refusal must stay far below that."""
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert "refused before decoding" in report["outcome"]
    grown = (report["peak_kb"] - report["before_kb"]) * 1024
    assert grown < DECODED_BYTES / 10, f"fitting the bomb grew RSS by {grown / 1e6:.0f} MB"


def test_the_absolute_cap_holds_whatever_limit_is_asked() -> None:
    with pytest.raises(ImageRefused, match="over the 40.0 MP allowed"):
        decode_bounded(pixel_bomb(), max_pixels=10**12)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n this is not really an image", b"GIF89a" + b"\0" * 40])
def test_garbage_is_refused_with_a_clear_message(data: bytes) -> None:
    with pytest.raises(ImageRefused, match="not a decodable image") as caught:
        fit_to_png(data, width=64, height=64)
    assert "BytesIO" not in str(caught.value)


def test_formats_outside_png_webp_jpeg_are_refused() -> None:
    with pytest.raises(ImageRefused, match="no PNG, WEBP, JPEG header"):
        inspect_image(encoded((8, 8), "TIFF"))


def test_images_within_the_limit_are_fitted_and_inspected() -> None:
    fitted = fit_to_png(encoded((1024, 1024), "WEBP"), width=512, height=512, max_pixels=4 * 512 * 512)
    assert (fitted.original_format, fitted.original_size) == ("WEBP", (1024, 1024))
    facts = inspect_image(fitted.png, max_pixels=512 * 512)
    assert (facts.format, facts.width, facts.height) == ("PNG", 512, 512)
    with pytest.raises(ImageRefused, match="over the"):
        inspect_image(fitted.png, max_pixels=512 * 511)
