"""The offline placeholder backend: a labelled, deterministic picture that costs nothing.

Colours and shapes come from a PRNG seeded with the request hash, so different specs give visibly
different images and the same spec gives identical bytes; a label names the entry so a reviewer
never mistakes a placeholder for a real render.
"""

from __future__ import annotations

import io
import random
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.request import GenerationRequest

PLACEHOLDER_MODEL = "placeholder-v1"


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour(rng: random.Random, *, light: bool) -> tuple[int, int, int]:
    low, high = (150, 255) if light else (20, 130)
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def render_placeholder(request: GenerationRequest, *, title: str = "PLACEHOLDER") -> bytes:
    """PNG bytes of the placeholder picture for `request`, labelled with `title`."""
    rng = random.Random(request.request_hash)
    width, height = request.width, request.height
    gradient = Image.linear_gradient("L").resize((width, height)).rotate(rng.choice([0, 90, 180, 270]))
    image = ImageOps.colorize(gradient.resize((width, height)), _colour(rng, light=False), _colour(rng, light=True))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(5, 11)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        side = rng.randint(min(width, height) // 10, min(width, height) // 3)
        box = (x0 - side, y0 - side, x0 + side, y0 + side)
        fill, outline = _colour(rng, light=rng.random() < 0.5), _colour(rng, light=True)
        shape = rng.choice(["ellipse", "rectangle", "triangle"])
        if shape == "ellipse":
            draw.ellipse(box, fill=fill, outline=outline, width=max(1, side // 20))
        elif shape == "rectangle":
            draw.rectangle(box, fill=fill, outline=outline, width=max(1, side // 20))
        else:
            draw.polygon([(x0, y0 - side), (x0 - side, y0 + side), (x0 + side, y0 + side)], fill=fill, outline=outline)
    _draw_label(draw, request, title)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _draw_label(draw: ImageDraw.ImageDraw, request: GenerationRequest, title: str) -> None:
    width, height = request.width, request.height
    size = max(10, min(width, height) // 28)
    font, small = _font(size + size // 2), _font(size)
    chars_per_line = max(12, int(width * 0.8 / (size * 0.55)))
    lines = [
        (title, font),
        (request.partition_key, small),
        (f"{request.category} · {width}x{height} · seed {request.seed}", small),
        *((line, small) for line in textwrap.wrap(request.prompt, chars_per_line)[:3]),
    ]
    margin = size
    line_height = int(size * 1.6)
    panel_height = margin * 2 + line_height * len(lines) + size
    top = max(0, height - panel_height - margin)
    draw.rectangle((margin, top, width - margin, min(height, top + panel_height)), fill=(255, 255, 255), outline=(0, 0, 0))
    y = top + margin
    for text, face in lines:
        draw.text((margin * 2, y), text, fill=(20, 20, 20), font=face)
        y += line_height + (size // 2 if face is font else 0)


class PlaceholderBackend(ImageBackend):
    """Free, offline, deterministic: the default backend, for demos and tests."""

    name = "placeholder"

    @property
    def default_model(self) -> str:
        return PLACEHOLDER_MODEL

    def render(self, request: GenerationRequest, session: RenderSession | None = None) -> RenderedImage:
        return RenderedImage(png=render_placeholder(request), model=request.model, cost_usd=0.0)
