"""Turn a provider's output (PNG, WebP or JPEG, any size) into a PNG of the spec's exact size."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError


@dataclass(frozen=True)
class FittedImage:
    png: bytes
    original_format: str
    original_size: tuple[int, int]


def fit_to_png(data: bytes, *, width: int, height: int) -> FittedImage:
    """Resize to cover `width` x `height` and centre-crop; raise `ValueError` if `data` is no image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            original_format, original_size = image.format or "", image.size
            rgb = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a decodable image: {exc.__class__.__name__}: {exc}") from None
    if rgb.size != (width, height):
        rgb = ImageOps.fit(rgb, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    out = io.BytesIO()
    rgb.save(out, format="PNG", compress_level=3)
    return FittedImage(out.getvalue(), original_format, original_size)
