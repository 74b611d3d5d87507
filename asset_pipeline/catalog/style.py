"""The catalog's optional `style:` section: the house style that turns short briefs into prompts.

Kept apart from `spec.py` because it belongs to the whole catalog, not to one image: its hash
(`StyleGuide.version`) is part of the data version of every entry written from a brief, so an edit
to the style makes exactly those prompts stale and leaves entries with a written prompt alone.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from asset_pipeline.catalog.text import clean_text, non_empty

MAX_GUIDE_CHARS = 8000
MAX_BRIEF_CHARS = 1000
MAX_EXAMPLES = 8

Brief = Annotated[str, Field(max_length=MAX_BRIEF_CHARS), AfterValidator(clean_text), AfterValidator(non_empty)]
GuideText = Annotated[str, Field(max_length=MAX_GUIDE_CHARS), AfterValidator(clean_text)]


class FewShotExample(BaseModel):
    """One worked example shown to the LLM: a brief and the prompt the house style makes of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    brief: Brief
    prompt: Annotated[str, Field(max_length=2000), AfterValidator(clean_text), AfterValidator(non_empty)]
    negative_prompt: Annotated[str, Field(max_length=2000), AfterValidator(clean_text)] = ""


class StyleGuide(BaseModel):
    """House style: `guide` (palette, lighting, lens, ...), things to `avoid`, an optional system
    prompt replacing the built-in one, and few-shot examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    guide: Annotated[GuideText, AfterValidator(non_empty)]
    avoid: GuideText = ""
    system_prompt: GuideText | None = None
    examples: tuple[FewShotExample, ...] = Field(default=(), max_length=MAX_EXAMPLES)

    @cached_property
    def version(self) -> str:
        """SHA-256 of the canonical JSON of the whole section."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
