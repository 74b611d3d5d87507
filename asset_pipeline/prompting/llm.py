"""One chat-completions call through the official `openai` client, with the structured-output format.

The client is built by the resource (`OpenAI(base_url=..., api_key=..., max_retries=0)`): the
writer does its own retries, so that every attempt is reserved and settled in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from asset_pipeline.prompting.failures import classify
from asset_pipeline.prompting.value import answer_schema


@dataclass(frozen=True)
class LlmAnswer:
    content: str | None
    refusal: str | None
    finish_reason: str | None
    input_tokens: int | None  # None when the API reported no usage
    output_tokens: int | None
    response_id: str | None


def complete(
    client: openai.OpenAI, messages: list[dict[str, str]], *, model: str, temperature: float, seed: int,
    max_tokens: int, timeout_s: float,
) -> LlmAnswer:
    """Ask once; raise `LlmFailure` (failures.py) for anything but an answer."""
    try:
        options: dict[str, Any] = {"response_format": answer_schema(), "messages": messages}
        response = client.chat.completions.create(
            model=model, temperature=temperature, seed=seed, max_tokens=max_tokens, timeout=timeout_s, **options
        )
    except openai.OpenAIError as exc:
        raise classify(exc) from None
    choices = getattr(response, "choices", None) or []
    message: Any = choices[0].message if choices else None
    usage = getattr(response, "usage", None)
    return LlmAnswer(
        content=getattr(message, "content", None),
        refusal=getattr(message, "refusal", None),
        finish_reason=choices[0].finish_reason if choices else None,
        input_tokens=_tokens(getattr(usage, "prompt_tokens", None)),
        output_tokens=_tokens(getattr(usage, "completion_tokens", None)),
        response_id=response.id if isinstance(getattr(response, "id", None), str) else None,
    )


def _tokens(value: object) -> int | None:
    """A usable token count, or None (garbage counts are treated as no usage: charged as reserved)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return None
