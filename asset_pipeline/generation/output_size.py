"""Which output sizes a paid request may be fitted from, and how many pixels its output may claim.

Pure logic. A `width_height` model must return exactly the size asked for. An `aspect_ratio` model
(flux) returns its own size for the ratio sent (about one megapixel, sides a multiple of 16), which
is then fitted (cover + centre-crop) to the spec's size; fitting is allowed only when the output has
that ratio and covers the spec's size with at most `MAX_UPSCALE` enlargement, so a 1x1 or 10x10
answer to a 1024x1024 request is refused instead of being blown up and charged as a success.
"""

from __future__ import annotations

import math
from typing import Literal

from asset_pipeline.generation.pricing import nearest_aspect_ratio

SizeInput = Literal["aspect_ratio", "width_height"]

MAX_UPSCALE = 1.1  # enlarge an output by at most 10% to cover the spec's size
RATIO_TOLERANCE = 0.05  # an aspect-ratio model's output may differ this much from the ratio sent
PIXEL_FACTOR = 4  # an output may claim at most this many times the pixels expected of it
MODEL_MEGAPIXELS = 1024 * 1024  # what flux renders for any ratio at its default `megapixels`


def expected_size(width: int, height: int, size_input: SizeInput) -> tuple[int, int]:
    """The size the model is asked to render: the spec's own, or the model's size for the ratio sent."""
    if size_input == "width_height":
        return width, height
    w, h = (int(part) for part in nearest_aspect_ratio(width, height).split(":"))
    out_w = round(math.sqrt(MODEL_MEGAPIXELS * w / h) / 16) * 16
    return out_w, round(out_w * h / w / 16) * 16


def max_output_pixels(width: int, height: int, size_input: SizeInput, *, cap: int) -> int:
    """Pixels an output's header may claim before it is refused undecoded (never more than `cap`)."""
    expected_w, expected_h = expected_size(width, height, size_input)
    return min(cap, PIXEL_FACTOR * max(width * height, expected_w * expected_h))


def size_problem(actual: tuple[int, int], *, width: int, height: int, size_input: SizeInput) -> str | None:
    """Why an output of `actual` size may not be fitted to `width` x `height`, or None if it may."""
    actual_w, actual_h = actual
    if size_input == "width_height":
        return None if actual == (width, height) else f"returned {actual_w}x{actual_h}, expected {width}x{height}"
    expected_w, expected_h = expected_size(width, height, size_input)
    ratio = nearest_aspect_ratio(width, height)
    w, h = (int(part) for part in ratio.split(":"))
    off_ratio = abs(math.log((actual_w / actual_h) / (w / h))) > math.log1p(RATIO_TOLERANCE)
    upscale = max(width / actual_w, height / actual_h)
    if off_ratio or upscale > MAX_UPSCALE:
        return (f"returned {actual_w}x{actual_h}, expected about {expected_w}x{expected_h} (aspect ratio {ratio}) "
                f"to fit to {width}x{height}")
    return None
