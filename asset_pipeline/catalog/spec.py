"""Pydantic models of one image spec and of a whole catalog.

Limits are chosen so every spec is valid for all three backends: sizes are multiples of 8
(SDXL's VAE works on 8-pixel blocks) between 64 and 2048 pixels a side, prompts are bounded so a
typo cannot send megabytes to a paid API, and ids are slugs that are safe as file names and as
Dagster partition keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from asset_pipeline.catalog.style import Brief, StyleGuide

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PROMPT_CHARS = 2000
MAX_STYLE_TAGS = 16
MAX_TAKE = 100_000
MAX_PROMPT_ADDITION_CHARS = 300
MAX_PROMPT_ADDITIONS = 5  # a partition's newest additions; older ones drop off
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,78}[a-z0-9])?$"
# C0 (but tab and newline) and C1 controls, DEL, and invisible characters that change how text
# reads or compares: zero-width U+200B-U+200F, bidi embeddings/overrides U+202A-U+202E and isolates
# U+2066-U+2069, the byte order mark U+FEFF (a prompt would show one thing and send another).
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _multiple_of_8(value: int) -> int:
    if value % 8:
        raise ValueError(f"must be a multiple of 8 (got {value}; nearest is {max(8, round(value / 8) * 8)})")
    return value


def _clean_text(value: str) -> str:
    found = _CONTROL_CHARS.search(value)
    if found:
        raise ValueError(f"must not contain control, bidi or zero-width characters "
                         f"(U+{ord(found.group()):04X} at position {found.start()})")
    return value.strip()


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


Slug = Annotated[
    str,
    Field(
        pattern=SLUG_PATTERN,
        description="lowercase letters, digits, '-' and '_', 1-80 characters, starting and ending "
        "with a letter or digit",
    ),
]
Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE), AfterValidator(_multiple_of_8)]
Prompt = Annotated[
    str, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(_clean_text), AfterValidator(_non_empty)
]
NegativePrompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(_clean_text)]
PromptAddition = Annotated[
    str, Field(max_length=MAX_PROMPT_ADDITION_CHARS), AfterValidator(_clean_text), AfterValidator(_non_empty)
]
StyleTag = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9 _-]*$")]
ModelRef = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][\w./:@-]*$")]



def take_seed(seed: int, take: int) -> int:
    """The seed of take `take` (review loop): take 0 keeps the spec's seed, later takes derive a new one."""
    if take == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:take:{take}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def derived_seed(image_id: str) -> int:
    """A stable seed for specs that do not set one, so re-runs reproduce the same image."""
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class SpecDefaults(BaseModel):
    """Values applied to every entry that does not set them (the catalog's `defaults:` block)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Slug | None = None
    negative_prompt: NegativePrompt = ""
    width: Side = 1024
    height: Side = 1024
    steps: int = Field(default=30, ge=1, le=150)
    guidance: float = Field(default=7.0, ge=0.0, le=30.0)
    style: list[StyleTag] = Field(default_factory=list, max_length=MAX_STYLE_TAGS)
    model: ModelRef | None = None


class ImageSpec(BaseModel):
    """Everything needed to generate one image; one spec is one partition of `images`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    category: Slug
    # With a `brief` (and the catalog's `style:`), the prompt is written by the `prompts` asset;
    # `prompt` is then optional and `prompt_override` pins the final prompt (no LLM call).
    prompt: Prompt | None = None
    brief: Brief | None = None
    prompt_override: Prompt | None = None
    negative_prompt: NegativePrompt = ""
    width: Side = 1024
    height: Side = 1024
    seed: int = Field(ge=0, le=2**32 - 1)
    steps: int = Field(default=30, ge=1, le=150)
    guidance: float = Field(default=7.0, ge=0.0, le=30.0)
    style: tuple[StyleTag, ...] = Field(default=(), max_length=MAX_STYLE_TAGS)
    model: ModelRef | None = None
    # Review loop (ledger/reviews.py): each rejected image asks for a new take, with a new seed and
    # optionally text appended to the prompt. Both are part of the spec hash only when set, so
    # specs never reviewed keep the hash they always had.
    take: int = Field(default=0, ge=0, le=MAX_TAKE)
    prompt_additions: tuple[PromptAddition, ...] = Field(default=(), max_length=MAX_PROMPT_ADDITIONS)

    @model_validator(mode="before")
    @classmethod
    def _seed_from_id(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("seed") is None:
            image_id = data.get("id")
            # Without a usable id the entry is already invalid; do not add a second "seed" error.
            return {**data, "seed": derived_seed(image_id) if isinstance(image_id, str) else 0}
        return data

    @model_validator(mode="after")
    def _has_a_prompt(self) -> ImageSpec:
        if self.prompt is None and self.brief is None and self.prompt_override is None:
            raise ValueError("needs a 'prompt' (used as written) or a 'brief' (written into a prompt)")
        return self

    @cached_property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON of the spec: the data version of its catalog partition.

        `brief`, `prompt_override`, `take` and `prompt_additions` count only when set, so entries
        without them keep the hash they had before they existed (their images stay fresh)."""
        dumped = self.model_dump(mode="json")
        for optional in ("brief", "prompt_override", "take", "prompt_additions"):
            if not dumped.get(optional):
                dumped.pop(optional, None)
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def written_prompt(self) -> str | None:
        """The final prompt when no LLM is needed: the pinned override, else a prompt without a brief."""
        if self.prompt_override is not None:
            return self.prompt_override
        return self.prompt if self.brief is None else None

    @property
    def full_prompt(self) -> str:
        """The prompt with its style tags and the review's prompt additions appended, as sent to a backend."""
        text = self.written_prompt or self.prompt or self.brief or ""
        parts = [text, *self.style, *self.prompt_additions]
        return ", ".join(parts) if len(parts) > 1 else text

    @property
    def render_seed(self) -> int:
        """The seed sent to a backend: the spec's seed for take 0, a derived one for later takes."""
        return take_seed(self.seed, self.take)

    def for_take(self, rejections: int, additions: tuple[str, ...] = ()) -> ImageSpec:
        """This spec after `rejections` rejected images, with the rejections' prompt additions.

        Built anew (not `model_copy`) so every limit is validated again and no cached hash is kept."""
        if not rejections and not additions:
            return self
        merged = tuple(dict.fromkeys([*self.prompt_additions, *additions]))[-MAX_PROMPT_ADDITIONS:]
        return ImageSpec.model_validate(
            {**self.model_dump(), "take": self.take + rejections, "prompt_additions": merged}
        )


class Catalog(BaseModel):
    """A validated catalog: specs in file order, ids unique."""

    model_config = ConfigDict(frozen=True)

    source: str
    images: tuple[ImageSpec, ...]
    style: StyleGuide | None = None  # the `style:` section; used by entries with a `brief`

    @cached_property
    def by_id(self) -> dict[str, ImageSpec]:
        return {spec.id: spec for spec in self.images}

    @property
    def ids(self) -> list[str]:
        return [spec.id for spec in self.images]

    def get(self, image_id: str) -> ImageSpec:
        return self.by_id[image_id]

    def partition_version(self, spec: ImageSpec) -> str:
        """The `image_catalog` data version of `spec`'s partition: its spec hash, plus the style
        guide's version when an LLM or template writes its prompt from the brief."""
        if spec.written_prompt is not None or self.style is None:
            return spec.spec_hash
        return hashlib.sha256(f"{spec.spec_hash}:{self.style.version}".encode()).hexdigest()

    def with_takes(self, takes: dict[str, tuple[int, tuple[str, ...]]]) -> Catalog:
        """The catalog with each partition's review takes applied: id -> (rejections, prompt additions)."""
        if not takes:
            return self
        images = tuple(spec.for_take(*takes[spec.id]) if spec.id in takes else spec for spec in self.images)
        return Catalog(source=self.source, images=images, style=self.style)
