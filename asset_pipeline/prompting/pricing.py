"""Token prices per model and the arithmetic of an LLM call's reservation and charge.

The reservation must bound the bill, or the ledger could not equal it: the input side is priced at
one token per UTF-8 byte of the messages (no tokenizer makes more tokens than bytes) plus a
per-message overhead, the output side at `max_tokens`, which the provider never exceeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

TOKENS_PER_MESSAGE = 8  # role markers and separators around each chat message


@dataclass(frozen=True)
class TokenPrice:
    """USD per million input and output tokens."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= 1000:
                raise ValueError(f"{name} must be a number of dollars between 0 and 1000 (got {value!r})")

    def cost_usd(self, *, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


# Public list prices (USD per million tokens) of a few common models; the operator's table
# (ASSET_PIPELINE_LLM_PRICES) adds to or replaces these. A model without a price is refused.
DEFAULT_LLM_PRICES: dict[str, TokenPrice] = {
    "gpt-4o-mini": TokenPrice(0.15, 0.60),
    "gpt-4o": TokenPrice(2.50, 10.00),
    "gpt-4.1-mini": TokenPrice(0.40, 1.60),
    "gpt-4.1-nano": TokenPrice(0.10, 0.40),
    "openai/gpt-4o-mini": TokenPrice(0.15, 0.60),
}


def input_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound of the input tokens of `messages` (see the module docstring)."""
    return sum(len(m["content"].encode()) + TOKENS_PER_MESSAGE for m in messages)


def reservation_usd(price: TokenPrice, messages: list[dict[str, str]], *, max_tokens: int, schema: Any = None) -> float:
    """What to set aside before the call: the input bound (schema included) plus `max_tokens` of output."""
    schema_tokens = len(json.dumps(schema).encode()) if schema is not None else 0
    return price.cost_usd(input_tokens=input_token_bound(messages) + schema_tokens, output_tokens=max_tokens)


def parse_price_table(text: str) -> dict[str, TokenPrice]:
    """`{"model": {"input_per_million": 0.15, "output_per_million": 0.6}, ...}` or `{"model": [0.15, 0.6]}`."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("must be a JSON object mapping model names to prices")
    table: dict[str, TokenPrice] = {}
    for model, value in raw.items():
        try:
            if isinstance(value, list) and len(value) == 2:
                table[str(model)] = TokenPrice(*value)
            elif isinstance(value, dict):
                table[str(model)] = TokenPrice(**value)
            else:
                raise ValueError("give [input, output] or {input_per_million, output_per_million}")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"price of model {str(model)[:80]!r}: {exc}") from None
    return table
