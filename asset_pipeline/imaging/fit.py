"""Turn a provider's output (PNG, WebP or JPEG, any size) into a PNG of the spec's exact size."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from asset_pipeline.imaging.bounded import ABSOLUTE_MAX_PIXELS, decode_bounded


@dataclass(frozen=True)
class FittedImage:
    png: bytes
    original_format: str
    original_size: tuple[int, int]


def fit_to_png(data: bytes, *, width: int, height: int, max_pixels: int = ABSOLUTE_MAX_PIXELS) -> FittedImage:
    """Resize to cover `width` x `height` and centre-crop.

    Raise `ImageRefused` (a `ValueError`) if `data` is no image, or its header claims more than
    `max_pixels`: that is checked before decoding, so a pixel bomb never reaches memory.
    """
    header, image = decode_bounded(data, max_pixels=max_pixels)
    with image:
        rgb = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if rgb.size != (width, height):
        rgb = ImageOps.fit(rgb, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    out = io.BytesIO()
    rgb.save(out, format="PNG", compress_level=3)
    return FittedImage(out.getvalue(), header.format, (header.width, header.height))
