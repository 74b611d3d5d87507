"""A fake OpenAI-compatible API: `POST /v1/chat/completions` with `usage`, structured output, and
scripted faults, served on loopback and driven through the real `openai` client.

Answers are deterministic (the brief plus the style guide's first phrases), so the same request
always gets the same text, as a provider at temperature 0 would. Faults: `429` (with Retry-After),
`500`, `malformed` (content that is not JSON), `refusal`, `context` (context length exceeded),
`no_usage`, `garbage_usage` (negative / non-numeric counts), `hostile` (an over-long prompt with a
bidi override), `slow` (waits `slow_s`). Scripted faults are used once each, in order; `brief_faults`
apply to every request whose brief contains the key. Every answered request is billed in `tokens`,
so a test can compare the ledger with what this "provider" billed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeOpenAIState:
    api_key: str = "sk-fake-test-key-0123456789"
    delay_s: float = 0.0  # every answer takes this long (a real LLM is not instant)
    slow_s: float = 5.0  # the `slow` fault's delay
    retry_after: str = "1"
    faults: list[str] = field(default_factory=list)
    brief_faults: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    answered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    billed: list[tuple[str, int, int]] = field(default_factory=list)  # (response id, input, output)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def bill_usd(self, input_per_million: float, output_per_million: float) -> float:
        return (self.input_tokens * input_per_million + self.output_tokens * output_per_million) / 1_000_000

    def next_fault(self, brief: str) -> str | None:
        with self._lock:
            for key, fault in self.brief_faults.items():
                if key in brief:
                    return fault
            return self.faults.pop(0) if self.faults else None


def _brief_and_style(messages: list[dict[str, Any]]) -> tuple[str, str]:
    last = str(messages[-1].get("content", "")) if messages else ""
    for message in reversed(messages):
        if message.get("role") == "user" and "Brief: " in str(message.get("content")):
            last = str(message["content"])
            break
    brief = last.rsplit("Brief: ", 1)[-1].strip()
    style = ""
    if "Style guide:\n" in last:
        style = last.split("Style guide:\n", 1)[1].split("\n\n", 1)[0]
    return brief, style


def answer_for(brief: str, style: str) -> dict[str, str]:
    phrases = [p.strip(" .") for p in style.replace("\n", ". ").split(". ") if p.strip(" .")][:3]
    prompt = ", ".join([brief.rstrip(" ."), *phrases, "highly detailed illustration"])
    return {"prompt": prompt[:1900], "negative_prompt": "text, watermark, blurry"}


def _tokens(text: str) -> int:
    return max(1, len(text.encode()) // 4)


def build_app(state: FakeOpenAIState) -> Starlette:
    async def completions(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization", "")
        state.authorizations.append(authorization)
        if authorization != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}}, status_code=401)
        body = await request.json()
        state.requests.append(body)
        messages = body.get("messages") or []
        brief, style = _brief_and_style(messages)
        fault = state.next_fault(brief)
        if fault == "429":
            return JSONResponse({"error": {"message": "Rate limit reached", "type": "rate_limit", "code": "rate_limit_exceeded"}},
                                status_code=429, headers={"retry-after": state.retry_after})
        if fault == "500":
            return JSONResponse({"error": {"message": "The server had an error", "type": "server_error"}}, status_code=500)
        if fault == "context":
            return JSONResponse({"error": {"message": "This model's maximum context length is 8192 tokens",
                                           "type": "invalid_request_error", "code": "context_length_exceeded"}},
                                status_code=400)
        delay = state.slow_s if fault == "slow" else state.delay_s
        if delay:
            await asyncio.sleep(delay)
        content: str | None = json.dumps(answer_for(brief, style))
        refusal = None
        if fault == "malformed":
            content = "Sure! Here is your prompt: a lovely picture {not json"
        elif fault == "refusal":
            content, refusal = None, "I can't help with that request."
        elif fault == "hostile":  # valid JSON, but a prompt far too long and with a bidi override
            content = json.dumps({"prompt": "a key \u202e" + "x" * 5000, "negative_prompt": ""})
        input_tokens = sum(_tokens(str(m.get("content", ""))) + 4 for m in messages)
        output_tokens = _tokens(content or refusal or "")
        response_id = f"chatcmpl-fake{next(state._ids)}"
        with state._lock:
            state.answered += 1
            state.input_tokens += input_tokens
            state.output_tokens += output_tokens
            state.billed.append((response_id, input_tokens, output_tokens))
        payload: dict[str, Any] = {
            "id": response_id, "object": "chat.completion", "created": 1_700_000_000, "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        }
        if fault == "garbage_usage":
            payload["usage"] = {"prompt_tokens": -5, "completion_tokens": "many", "total_tokens": 1e308}
        elif fault != "no_usage":
            payload["usage"] = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                                "total_tokens": input_tokens + output_tokens}
        return JSONResponse(payload)

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
