"""Decode and measure images: is it a real PNG, of what size, is it blank."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageStat, UnidentifiedImageError

# A standard deviation of grey levels below this means a flat image (a blank or failed render).
BLANK_STDDEV_THRESHOLD = 2.0


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int
    stddev: float

    @property
    def is_blank(self) -> bool:
        return self.stddev < BLANK_STDDEV_THRESHOLD


def inspect_image(data: bytes) -> ImageFacts:
    """Decode `data` fully; raise `ValueError` if it is not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            grey = image.convert("L")
            grey.thumbnail((256, 256))
            stddev = ImageStat.Stat(grey).stddev[0]
            return ImageFacts(format=image.format or "", width=image.width, height=image.height, stddev=stddev)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a decodable image: {exc.__class__.__name__}: {exc}") from None
