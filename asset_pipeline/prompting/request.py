"""One prompt-writing request and its hash: the cache key that makes a re-run cost nothing.

The hash covers everything that can change the answer: expander, model, system prompt, the style
guide's version, the brief, temperature, seed and answer limit. Two entries with the same brief and
style share one answer (and one charge).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.catalog.style import StyleGuide

DEFAULT_SYSTEM_PROMPT = (
    "You write prompts for a text-to-image model. Given a short brief and a house style guide, "
    "answer with one JSON object with two fields: 'prompt' (one vivid sentence or comma-separated "
    "phrases describing the image in the house style, under 600 characters) and 'negative_prompt' "
    "(what the image must avoid, comma-separated). No other text."
)


@dataclass(frozen=True)
class PromptRequest:
    partition_key: str
    expander: str
    model: str
    brief: str
    style_guide: str
    avoid: str
    style_version: str
    system_prompt: str
    examples: tuple[tuple[str, str, str], ...] = ()  # (brief, prompt, negative prompt)
    negative_prompt: str = ""  # the entry's own negative prompt, kept in the answer
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 400
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def request_hash(self) -> str:
        fields = {
            "expander": self.expander, "model": self.model, "system_prompt": self.system_prompt,
            "style_version": self.style_version, "brief": self.brief, "negative_prompt": self.negative_prompt,
            "temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens,
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def messages(self) -> list[dict[str, str]]:
        """Chat messages: system prompt, few-shot pairs, then the brief with the style guide."""
        messages = [{"role": "system", "content": self.system_prompt}]
        for brief, prompt, negative in self.examples:
            messages.append({"role": "user", "content": self._user(brief, "")})
            messages.append({"role": "assistant", "content": json.dumps({"prompt": prompt, "negative_prompt": negative})})
        messages.append({"role": "user", "content": self._user(self.brief, self.negative_prompt)})
        return messages

    def _user(self, brief: str, negative: str) -> str:
        parts = [f"Style guide:\n{self.style_guide}"]
        if self.avoid:
            parts.append(f"Always avoid: {self.avoid}")
        if negative:
            parts.append(f"Also avoid: {negative}")
        parts.append(f"Brief: {brief}")
        return "\n\n".join(parts)


def build_prompt_request(
    spec: ImageSpec, style: StyleGuide | None, *, expander: str, model: str, temperature: float, max_tokens: int
) -> PromptRequest:
    """The request for an entry with a brief (`spec.written_prompt is None`)."""
    assert spec.brief is not None, "only entries with a brief are written"
    return PromptRequest(
        partition_key=spec.id, expander=expander, model=model, brief=spec.brief,
        style_guide=style.guide if style else "", avoid=style.avoid if style else "",
        style_version=style.version if style else "", negative_prompt=spec.negative_prompt,
        system_prompt=(style.system_prompt if style and style.system_prompt else DEFAULT_SYSTEM_PROMPT),
        examples=tuple((e.brief, e.prompt, e.negative_prompt) for e in style.examples) if style else (),
        temperature=temperature, seed=spec.seed, max_tokens=max_tokens,
    )
