"""The metered prompt writer: one entry's final prompt, free when written, cached, else paid for.

Money path of an LLM call, the same as an image's: reserve (`max_tokens` of output plus a bound
of the input) in the shared ledger under the same caps, call, validate the answer, store it in the
cache, then charge the response's `usage` (a failed call is released; an answer that was billed but
unusable, a refusal or invalid JSON, is charged, so the ledger equals the provider's bill). Invalid
JSON gets one repair request. Retries by failure class: 429 (waiting out Retry-After), 5xx,
timeouts and lost connections; refusals, context-too-long and rejected requests fail at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import ValidationError

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.catalog.style import StyleGuide
from asset_pipeline.errors import BudgetExhaustedError, PromptError
from asset_pipeline.ledger.budget_ledger import BudgetLedger, Reservation
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.prompting.cache import PromptCache
from asset_pipeline.prompting.failures import LlmFailure
from asset_pipeline.prompting.llm import LlmAnswer, complete
from asset_pipeline.prompting.pricing import TokenPrice, reservation_usd
from asset_pipeline.prompting.request import PromptRequest, build_prompt_request
from asset_pipeline.prompting.template import template_prompt
from asset_pipeline.prompting.value import PromptValue, answer_schema, written_value

REPAIR_REQUEST = ("That answer was not a JSON object matching the schema ({problem}). "
                  "Answer again with only the JSON object: {{\"prompt\": ..., \"negative_prompt\": ...}}.")


@dataclass(frozen=True)
class WrittenPrompt:
    """What writing one entry's prompt came to; `source` is written, override, template or llm."""

    partition_key: str
    value: PromptValue
    source: str
    request_hash: str | None = None
    model: str | None = None
    cache_hit: bool = False
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0


@dataclass
class WriterPolicy:
    expander: str  # "template" or "llm"
    model: str
    temperature: float = 0.7
    max_tokens: int = 400
    timeout_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    max_wait_s: float = 120.0


class PromptWriter:
    """Thread-safe; one per run. `client_factory` builds the OpenAI client on first paid use."""

    def __init__(
        self, policy: WriterPolicy, *, cache: PromptCache, ledger: BudgetLedger | None, caps: BudgetCaps,
        prices: dict[str, TokenPrice], client_factory: Callable[[], openai.OpenAI] | None = None,
        secrets: tuple[str, ...] = (),
    ):
        self.policy = policy
        self.cache = cache
        self.ledger = ledger
        self.caps = caps
        self.prices = prices
        self._client_factory = client_factory
        self._client: openai.OpenAI | None = None
        self._secrets = tuple(secret for secret in secrets if secret)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @property
    def is_paid(self) -> bool:
        return self.policy.expander == "llm"

    def request_for(self, spec: ImageSpec, style: StyleGuide | None) -> PromptRequest | None:
        """The request that writes `spec`'s prompt; None when its prompt is written or pinned."""
        if spec.written_prompt is not None:
            return None
        model = self.policy.model if self.is_paid else "template"
        return build_prompt_request(spec, style, expander=self.policy.expander, model=model,
                                    temperature=self.policy.temperature, max_tokens=self.policy.max_tokens)

    def estimate_usd(self, request: PromptRequest) -> float:
        """What a call for `request` reserves (0 for the template expander or a cached answer)."""
        if not self.is_paid or self.cache.get(request.request_hash) is not None:
            return 0.0
        return reservation_usd(self._price(request), request.messages(), max_tokens=request.max_tokens,
                               schema=answer_schema())

    def write(self, spec: ImageSpec, style: StyleGuide | None, *, run_id: str,
              cancelled: threading.Event | None = None) -> WrittenPrompt:
        """`spec`'s final prompt; raises `PromptError` with its failure class."""
        written = written_value(spec)
        if written is not None:
            return WrittenPrompt(spec.id, written, "override" if spec.prompt_override is not None else "written")
        request = self.request_for(spec, style)
        assert request is not None
        with self._lock(request.request_hash):
            cached = self.cache.get(request.request_hash)
            if cached is not None:
                value, record = cached
                return WrittenPrompt(spec.id, value, str(record.get("source", self.policy.expander)),
                                     request.request_hash, request.model, cache_hit=True)
            if not self.is_paid:
                value = template_prompt(request)
                self.cache.put(request.request_hash, value, {"source": "template", "model": "template", "cost_usd": 0.0})
                return WrittenPrompt(spec.id, value, "template", request.request_hash, "template")
            return self._write_paid(request, run_id=run_id, cancelled=cancelled)

    def _lock(self, request_hash: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(request_hash, threading.Lock())

    def _price(self, request: PromptRequest) -> TokenPrice:
        price = self.prices.get(request.model)
        if price is None:
            raise PromptError(request.partition_key, f"no price for LLM model '{request.model}': add it to "
                              "ASSET_PIPELINE_LLM_PRICES (nothing was sent)", failure_class="rejected")
        return price

    def _write_paid(self, request: PromptRequest, *, run_id: str, cancelled: threading.Event | None) -> WrittenPrompt:
        price = self._price(request)
        messages = request.messages()
        attempts = 0
        repaired = False
        spent = 0.0
        tokens = [0, 0]
        while True:
            if cancelled is not None and cancelled.is_set():
                raise PromptError(request.partition_key, "run terminated", failure_class="cancelled")
            attempts += 1
            reservation = self._reserve(request, price, messages, run_id)
            try:
                answer = complete(self._openai(), messages, model=request.model, temperature=request.temperature,
                                  seed=request.seed, max_tokens=request.max_tokens, timeout_s=self.policy.timeout_s)
            except LlmFailure as failure:
                assert self.ledger is not None
                self.ledger.release(reservation, reason=f"prompt call failed: {failure.failure_class}")
                if failure.retryable and attempts < self.policy.max_attempts:
                    self._wait(failure, attempts, cancelled)
                    continue
                raise self._error(request, failure.reason, failure.failure_class, attempts, failure.retry_after_s) from None
            except BaseException:
                assert self.ledger is not None
                self.ledger.release(reservation, reason="prompt call interrupted before an answer")
                raise
            cost = self._cost(price, answer, reservation)
            tokens[0] += answer.input_tokens or 0
            tokens[1] += answer.output_tokens or 0
            if answer.refusal:
                self._charge(reservation, cost, answer, "billed refusal")
                raise self._error(request, f"the LLM refused: {self._redact(answer.refusal)[:200]}", "refusal", attempts)
            try:
                value = PromptValue.model_validate_json(answer.content or "")
            except ValidationError as exc:
                self._charge(reservation, cost, answer, "billed answer that was not valid JSON")
                spent += cost
                problem = _first_problem(exc)
                if repaired:
                    raise self._error(request, f"invalid answer after a repair request: {problem}", "invalid_answer",
                                      attempts) from None
                repaired = True
                messages = [*messages, {"role": "assistant", "content": (answer.content or "")[:4000]},
                            {"role": "user", "content": REPAIR_REQUEST.format(problem=problem)}]
                continue
            spent += cost
            self.cache.put(request.request_hash, value, {
                "source": "llm", "model": request.model, "cost_usd": round(spent, 9), "input_tokens": tokens[0],
                "output_tokens": tokens[1], "response_id": answer.response_id, "created_at": time.time(),
            })
            self._charge(reservation, cost, answer, "prompt written")
            return WrittenPrompt(request.partition_key, value, "llm", request.request_hash, request.model,
                                 cost_usd=spent, input_tokens=tokens[0], output_tokens=tokens[1], attempts=attempts)

    def _reserve(self, request: PromptRequest, price: TokenPrice, messages: list[dict[str, str]],
                 run_id: str) -> Reservation:
        assert self.ledger is not None, "a paid writer needs the ledger"
        amount = reservation_usd(price, messages, max_tokens=request.max_tokens, schema=answer_schema())
        try:
            return self.ledger.reserve(run_id=run_id, partition_key=request.partition_key,
                                       request_hash=request.request_hash, model=f"llm:{request.model}",
                                       amount_usd=amount, caps=self.caps)
        except BudgetExhaustedError as exc:
            raise PromptError(request.partition_key, f"budget exhausted: {exc.reason}", failure_class="budget_exhausted") from None

    def _cost(self, price: TokenPrice, answer: LlmAnswer, reservation: Reservation) -> float:
        if answer.input_tokens is None or answer.output_tokens is None:
            return reservation.amount_usd  # no usage reported: book what was reserved, never less than the bill
        return price.cost_usd(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)

    def _charge(self, reservation: Reservation, cost: float, answer: LlmAnswer, reason: str) -> None:
        assert self.ledger is not None
        self.ledger.charge(reservation, amount_usd=cost, prediction_id=answer.response_id, reason=reason)

    def _wait(self, failure: LlmFailure, attempts: int, cancelled: threading.Event | None) -> None:
        delay = failure.retry_after_s if failure.retry_after_s is not None \
            else self.policy.backoff_base_s * 2 ** (attempts - 1)
        delay = min(delay, self.policy.max_wait_s)
        if cancelled is not None:
            cancelled.wait(delay)
        else:
            time.sleep(delay)

    def _error(self, request: PromptRequest, reason: str, failure_class: str, attempts: int,
               retry_after_s: float | None = None) -> PromptError:
        suffix = f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
        return PromptError(request.partition_key, self._redact(reason) + suffix, failure_class=failure_class,
                           retry_after_s=retry_after_s)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _openai(self) -> openai.OpenAI:
        with self._guard:
            if self._client is None:
                if self._client_factory is None:
                    raise PromptError("-", "no LLM client configured", failure_class="rejected")
                self._client = self._client_factory()
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _first_problem(exc: ValidationError) -> str:
    error: dict[str, Any] = dict(exc.errors()[0])
    where = ".".join(str(part) for part in error.get("loc", ())) or "answer"
    return f"{where}: {str(error.get('msg', 'invalid'))[:160]}"
