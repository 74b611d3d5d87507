"""Classify what an OpenAI-compatible API answered into the failure classes the writer acts on.

Kept apart from the call so the rules are testable without a server. Reasons are built from the
HTTP status and the provider's error code only, never from request headers, so the API key can
never reach a message (the writer redacts it as well, in case a provider echoes it in a body).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import openai

# class -> may another attempt succeed?
RETRYABLE = {"rate_limited": True, "server_error": True, "timeout": True, "connection": True,
             "invalid_answer": False, "refusal": False, "context_too_long": False, "rejected": False}


@dataclass(frozen=True)
class LlmFailure(Exception):
    failure_class: str
    reason: str
    status: int | None = None
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        return RETRYABLE.get(self.failure_class, False)


def classify(exc: Exception) -> LlmFailure:
    """The failure class of an exception raised by the `openai` client."""
    if isinstance(exc, openai.APITimeoutError):
        return LlmFailure("timeout", "the LLM did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return LlmFailure("connection", "could not reach the LLM API")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = _error_code(exc)
        where = f"HTTP {status}" + (f" ({code})" if code else "")
        if status == 429:
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            return LlmFailure("rate_limited", f"rate limited: {where}", status, retry_after)
        if status >= 500:
            return LlmFailure("server_error", f"the LLM API failed: {where}", status,
                              parse_retry_after(exc.response.headers.get("retry-after")))
        if code == "context_length_exceeded" or "context length" in _error_message(exc).lower():
            return LlmFailure("context_too_long", f"the brief and style guide are too long for the model: {where}", status)
        return LlmFailure("rejected", f"the LLM API refused the request: {where}", status)
    return LlmFailure("rejected", f"unexpected {exc.__class__.__name__} from the LLM client")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or garbage."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def _error_code(exc: openai.APIStatusError) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code.isprintable() and len(code) <= 60:
        return code
    return None


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message")
    return message[:300] if isinstance(message, str) else ""
