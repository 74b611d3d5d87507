"""Open untrusted image bytes with a bounded decode: the header is read first, and an image whose
header claims more pixels than allowed is refused before a single row is decoded.

A 13000x13000 PNG of one colour is 0.5 MB on the wire and 676 MB once decoded (Pillow keeps RGB as
four bytes a pixel); Pillow's own `MAX_IMAGE_PIXELS` guard only warns below 179 MP and is global,
so each caller states its own limit here instead.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from asset_pipeline.errors import ImageRefused

# Formats a provider or a backend may hand us; every other decoder (TIFF, PSD, EPS, ...) is attack
# surface we never need.
ALLOWED_FORMATS = ("PNG", "WEBP", "JPEG")
# No image the pipeline handles needs more; 40 MP is ~160 MB decoded.
ABSOLUTE_MAX_PIXELS = 40_000_000
# Our limits are far below Pillow's 89 MP warning threshold, so its warning would only repeat, on
# every header read, a refusal we make anyway. (A per-call `catch_warnings` is not thread-safe.)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes) -> ImageHeader:
    """Format and size from the header only (Pillow opens lazily); nothing is decoded."""
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            return ImageHeader(image.format or "", image.width, image.height)
    except _DECODE_ERRORS as exc:
        raise _undecodable(exc) from None


def decode_bounded(data: bytes, *, max_pixels: int) -> tuple[ImageHeader, Image.Image]:
    """Decode `data` fully, refusing it before decoding when its header claims over `max_pixels`."""
    header = read_header(data)
    limit = min(max_pixels, ABSOLUTE_MAX_PIXELS)
    if header.width < 1 or header.height < 1 or header.pixels > limit:
        raise ImageRefused(
            f"an image of {header.width}x{header.height} ({header.pixels / 1e6:.1f} MP), over the "
            f"{limit / 1e6:.1f} MP allowed for it; refused before decoding"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        image.load()
    except _DECODE_ERRORS as exc:
        raise _undecodable(exc) from None
    return header, image


def _undecodable(exc: Exception) -> ImageRefused:
    if isinstance(exc, UnidentifiedImageError):  # its message only names a BytesIO object
        return ImageRefused(f"not a decodable image: no {', '.join(ALLOWED_FORMATS)} header")
    return ImageRefused(f"not a decodable image: {exc.__class__.__name__}: {exc}")
