"""Lay thumbnails out as labelled grid pages for review."""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence

from PIL import Image, ImageDraw, ImageFont

CELL = 160
LABEL_HEIGHT = 18
COLUMNS = 12
ROWS_PER_PAGE = 8


REJECTED_COLOUR = (200, 30, 30)


def contact_sheet_pages(items: Sequence[tuple[str, bytes]], *, rejected: Collection[str] = ()) -> list[bytes]:
    """PNG pages of `COLUMNS` x `ROWS_PER_PAGE` cells, each an image (fitted) above its label.

    Labels in `rejected` (images rejected in review) get a red frame and a "REJECTED" mark."""
    per_page = COLUMNS * ROWS_PER_PAGE
    return [_page(items[start : start + per_page], rejected) for start in range(0, len(items), per_page)]


def _page(items: Sequence[tuple[str, bytes]], rejected: Collection[str] = ()) -> bytes:
    rows = (len(items) + COLUMNS - 1) // COLUMNS
    cell_height = CELL + LABEL_HEIGHT
    sheet = Image.new("RGB", (COLUMNS * CELL, rows * cell_height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for index, (label, data) in enumerate(items):
        left, top = (index % COLUMNS) * CELL, (index // COLUMNS) * cell_height
        with Image.open(io.BytesIO(data)) as image:
            thumb = image.convert("RGB")
        thumb.thumbnail((CELL - 8, CELL - 8))
        sheet.paste(thumb, (left + (CELL - thumb.width) // 2, top + (CELL - thumb.height) // 2))
        if label in rejected:
            draw.rectangle((left + 1, top + 1, left + CELL - 2, top + CELL - 2), outline=REJECTED_COLOUR, width=4)
            draw.text((left + 8, top + 6), "REJECTED", fill=REJECTED_COLOUR, font=font, stroke_width=2,
                      stroke_fill=(255, 255, 255))
        draw.text((left + 4, top + CELL), _fit(draw, label, font, CELL - 8), fill=(30, 30, 30), font=font)
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _fit(draw: ImageDraw.ImageDraw, label: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """`label`, shortened with an ellipsis until it fits in `width` pixels."""
    if draw.textlength(label, font=font) <= width:
        return label
    while label and draw.textlength(label + "…", font=font) > width:
        label = label[:-1]
    return label + "…"
