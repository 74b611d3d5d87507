"""Decode and measure images: is it a real PNG, of what size, is it blank.

One full decode serves every question (and, when asked, the preview thumbnail), because decoding a
large PNG is the most expensive thing the pipeline does per image after rendering it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageStat

from asset_pipeline.imaging.bounded import ABSOLUTE_MAX_PIXELS, decode_bounded

# A standard deviation of grey levels below this means a flat image (a blank or failed render).
BLANK_STDDEV_THRESHOLD = 2.0


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int
    stddev: float
    preview_jpeg: bytes | None = None

    @property
    def is_blank(self) -> bool:
        return self.stddev < BLANK_STDDEV_THRESHOLD


def inspect_image(data: bytes, *, preview_side: int | None = None, max_pixels: int = ABSOLUTE_MAX_PIXELS) -> ImageFacts:
    """Decode `data` fully; raise `ImageRefused` (a `ValueError`) if it is not a readable image or
    its header claims more than `max_pixels` (checked before decoding).

    With `preview_side`, also encode a JPEG thumbnail of at most that many pixels a side.
    """
    header, opened = decode_bounded(data, max_pixels=max_pixels)
    with opened as image:
        # Box-reduce first: converting or resampling the full-size image costs several times more.
        factor = max(1, max(image.width, image.height) // max(256, preview_side or 0))
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        small = (rgb.reduce(factor) if factor > 1 else rgb).convert("RGB")
        stddev = ImageStat.Stat(small.convert("L")).stddev[0]
        preview = None
        if preview_side is not None:
            small.thumbnail((preview_side, preview_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=70)
            preview = out.getvalue()
        return ImageFacts(header.format, image.width, image.height, stddev, preview)
