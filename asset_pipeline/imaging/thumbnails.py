"""Resized copies: thumbnails, web-size copies and the base64 preview shown in the Dagster UI."""

from __future__ import annotations

import base64
import io

from PIL import Image

PREVIEW_SIDE = 128


def resized(data: bytes, *, max_side: int, format: str = "PNG", quality: int = 85) -> bytes:
    """Encode a copy of `data` that fits in `max_side` x `max_side`, keeping the aspect ratio."""
    with Image.open(io.BytesIO(data)) as image:
        copy = image.convert("RGB")
    copy.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if format == "PNG":
        copy.save(out, format="PNG", optimize=True)
    else:
        copy.save(out, format=format, quality=quality)
    return out.getvalue()


def preview_markdown(data: bytes, *, alt: str, max_side: int = PREVIEW_SIDE) -> str:
    """A markdown image with an inline base64 JPEG thumbnail; the Dagster UI renders it."""
    return jpeg_markdown(resized(data, max_side=max_side, format="JPEG", quality=70), alt=alt)


def jpeg_markdown(jpeg: bytes, *, alt: str) -> str:
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(jpeg).decode()})"
