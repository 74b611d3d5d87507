"""The value of one `prompts` partition: the final prompt and negative prompt, validated.

The same pydantic model is the JSON schema sent to the LLM as its structured-output format, and
its limits are the image spec's, so whatever an LLM answers either fits a spec or is refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from asset_pipeline.catalog.spec import MAX_PROMPT_CHARS, ImageSpec
from asset_pipeline.catalog.text import clean_text, non_empty


class PromptValue(BaseModel):
    """What the `images` asset renders from: the final prompt and what to avoid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(clean_text), AfterValidator(non_empty)]
    negative_prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS), AfterValidator(clean_text)] = ""

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(json.dumps([self.prompt, self.negative_prompt]).encode()).hexdigest()


def answer_schema() -> dict[str, Any]:
    """The structured-output format (`response_format`), strict: both fields required, nothing else."""
    schema = PromptValue.model_json_schema()
    schema["required"] = ["prompt", "negative_prompt"]
    schema["additionalProperties"] = False
    return {"type": "json_schema", "json_schema": {"name": "image_prompt", "strict": True, "schema": schema}}


def rendered_spec(spec: ImageSpec, value: PromptValue) -> ImageSpec:
    """`spec` as `images` renders it: the final prompt in place of the brief.

    Its `spec_hash` is the `prompts` partition's data version: the hash of the produced text plus
    the spec's render settings (size, seed, steps, model, ...), because `images` has `prompts` as its
    only parent; an LLM answer that did not change keeps the same version and leaves the image fresh.
    For an entry with a written prompt it equals the entry's own spec hash."""
    data = spec.model_dump()
    data.update(prompt=value.prompt, negative_prompt=value.negative_prompt, brief=None, prompt_override=None)
    return ImageSpec.model_validate(data)


def written_value(spec: ImageSpec) -> PromptValue | None:
    """The value of an entry whose prompt needs no writing (a written prompt or a pinned override)."""
    written = spec.written_prompt
    return PromptValue(prompt=written, negative_prompt=spec.negative_prompt) if written is not None else None
