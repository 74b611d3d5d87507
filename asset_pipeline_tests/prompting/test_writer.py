"""The metered prompt writer through the real `openai` client against the fake OpenAI-compatible
server, with a real SQLite ledger: charges equal the fake's bill (usage), cache hits cost $0, and
each failure class (429 + Retry-After, 5xx, timeout, invalid JSON + one repair, refusal, context
too long, no usage) is retried or failed as it should, with the money invariants holding."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.catalog.style import StyleGuide
from asset_pipeline.errors import PromptError
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.prompting.cache import PromptCache
from asset_pipeline.prompting.pricing import TokenPrice
from asset_pipeline.prompting.writer import PromptWriter, WriterPolicy
from asset_pipeline_testing.briefs import LLM_KEY, MODEL, PRICE, STYLE
from asset_pipeline_testing.money_invariants import money_violations

CAPS = BudgetCaps(5, 5, 5)
STYLE_GUIDE = StyleGuide.model_validate(STYLE)


def make_writer(fake_openai, tmp_path: Path, *, caps: BudgetCaps = CAPS, timeout_s: float = 10.0,
                max_attempts: int = 4, expander: str = "llm") -> PromptWriter:
    ledger = BudgetLedger(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    policy = WriterPolicy(expander=expander, model=MODEL, timeout_s=timeout_s, max_attempts=max_attempts,
                          backoff_base_s=0.01, max_wait_s=5)
    return PromptWriter(policy, cache=PromptCache(tmp_path), ledger=ledger, caps=caps,
                        prices={MODEL: TokenPrice(*PRICE)}, secrets=(LLM_KEY,),
                        client_factory=lambda: openai.OpenAI(api_key=LLM_KEY, base_url=fake_openai.v1, max_retries=0))


def spec(brief: str = "grandmother passing a recipe book") -> ImageSpec:
    return ImageSpec.model_validate({"id": "brief-0", "category": "scene", "brief": brief})


def check_money(writer: PromptWriter, fake_openai) -> None:
    assert writer.ledger is not None
    assert money_violations(writer.ledger.engine, caps=CAPS, provider_bill_usd=fake_openai.bill_usd(*PRICE),
                            store_dir=writer.cache.folder.parent) == []


def test_an_answer_is_charged_its_usage_and_a_rerun_is_a_free_cache_hit(fake_openai, tmp_path: Path) -> None:
    writer = make_writer(fake_openai, tmp_path)
    written = writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert written.source == "llm" and not written.cache_hit
    assert written.value.prompt.startswith("grandmother passing a recipe book, Warm watercolour palette")
    assert written.cost_usd == pytest.approx(fake_openai.bill_usd(*PRICE))
    body = fake_openai.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["prompt", "negative_prompt"]
    assert body["model"] == MODEL and body["max_tokens"] == 400
    again = make_writer(fake_openai, tmp_path).write(spec(), STYLE_GUIDE, run_id="run-2")
    assert again.cache_hit and again.cost_usd == 0 and again.value == written.value
    assert fake_openai.answered == 1
    check_money(writer, fake_openai)


@pytest.mark.parametrize("fault", ["429", "500"])
def test_rate_limits_and_server_errors_are_retried(fake_openai, tmp_path: Path, fault: str) -> None:
    fake_openai.faults = [fault, fault]
    fake_openai.retry_after = "0.2"
    writer = make_writer(fake_openai, tmp_path)
    written = writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert written.attempts == 3 and len(fake_openai.requests) == 3
    entries = writer.ledger.entries()
    assert [e["kind"] for e in entries].count("release") == 2 and [e["kind"] for e in entries].count("charge") == 1
    check_money(writer, fake_openai)


def test_retry_after_is_waited_out(fake_openai, tmp_path: Path) -> None:
    import time

    fake_openai.faults = ["429"]
    fake_openai.retry_after = "0.8"
    started = time.monotonic()
    make_writer(fake_openai, tmp_path).write(spec(), STYLE_GUIDE, run_id="run-1")
    assert time.monotonic() - started >= 0.75


def test_invalid_json_gets_one_repair_request(fake_openai, tmp_path: Path) -> None:
    fake_openai.faults = ["malformed"]
    writer = make_writer(fake_openai, tmp_path)
    written = writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert written.value.prompt.startswith("grandmother")
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "not a JSON object" in repair[-1]["content"]
    # Both answers were billed, so both are charged: the ledger equals the bill.
    assert [e["kind"] for e in writer.ledger.entries()].count("charge") == 2
    check_money(writer, fake_openai)


def test_invalid_json_twice_fails_as_invalid_answer(fake_openai, tmp_path: Path) -> None:
    fake_openai.brief_faults = {"grandmother": "malformed"}
    writer = make_writer(fake_openai, tmp_path)
    with pytest.raises(PromptError) as failure:
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == "invalid_answer" and len(fake_openai.requests) == 2
    check_money(writer, fake_openai)


@pytest.mark.parametrize(("fault", "failure_class", "charged"),
                         [("refusal", "refusal", 1), ("context", "context_too_long", 0)])
def test_refusals_and_context_too_long_fail_at_once(fake_openai, tmp_path: Path, fault, failure_class, charged) -> None:
    fake_openai.brief_faults = {"grandmother": fault}
    writer = make_writer(fake_openai, tmp_path)
    with pytest.raises(PromptError) as failure:
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == failure_class and len(fake_openai.requests) == 1
    assert [e["kind"] for e in writer.ledger.entries()].count("charge") == charged
    check_money(writer, fake_openai)


def test_a_slow_answer_times_out_and_is_released(fake_openai, tmp_path: Path) -> None:
    fake_openai.brief_faults = {"grandmother": "slow"}
    fake_openai.slow_s = 3
    writer = make_writer(fake_openai, tmp_path, timeout_s=0.3, max_attempts=2)
    with pytest.raises(PromptError) as failure:
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == "timeout" and "2 attempts" in failure.value.reason
    assert all(e["kind"] != "charge" for e in writer.ledger.entries())
    assert money_violations(writer.ledger.engine, caps=CAPS) == []


def test_no_usage_is_charged_as_reserved_never_less_than_billed(fake_openai, tmp_path: Path) -> None:
    fake_openai.faults = ["no_usage"]
    writer = make_writer(fake_openai, tmp_path)
    writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    [reservation, charge] = writer.ledger.entries()
    assert charge["amount_usd"] == reservation["amount_usd"] >= fake_openai.bill_usd(*PRICE)
    assert money_violations(writer.ledger.engine, caps=CAPS) == []


def test_a_cap_stops_the_call_before_anything_is_sent(fake_openai, tmp_path: Path) -> None:
    writer = make_writer(fake_openai, tmp_path, caps=BudgetCaps(5, 5, 0.0001))
    with pytest.raises(PromptError) as failure:
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == "budget_exhausted" and fake_openai.requests == []


def test_the_key_never_reaches_an_error(fake_openai, tmp_path: Path) -> None:
    fake_openai.api_key = "sk-some-other-key"  # every call is refused with 401
    with pytest.raises(PromptError) as failure:
        make_writer(fake_openai, tmp_path).write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == "rejected" and "HTTP 401" in str(failure.value)
    assert LLM_KEY not in str(failure.value) and LLM_KEY[:12] not in repr(failure.value.__dict__)
    assert fake_openai.authorizations == [f"Bearer {LLM_KEY}"]


def test_an_unpriced_model_is_refused_before_any_call(fake_openai, tmp_path: Path) -> None:
    writer = make_writer(fake_openai, tmp_path)
    writer.prices = {}
    with pytest.raises(PromptError, match="no price for LLM model 'fake-llm'"):
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert fake_openai.requests == []


def test_written_prompts_and_the_template_cost_nothing(fake_openai, tmp_path: Path) -> None:
    writer = make_writer(fake_openai, tmp_path, expander="template")
    written = ImageSpec.model_validate({"id": "w", "category": "icon", "prompt": "a brass key"})
    pinned = ImageSpec.model_validate({"id": "p", "category": "icon", "brief": "a key", "prompt_override": "pinned"})
    assert writer.write(written, STYLE_GUIDE, run_id="r").value.prompt == "a brass key"
    assert writer.write(pinned, STYLE_GUIDE, run_id="r").source == "override"
    templated = writer.write(spec(), STYLE_GUIDE, run_id="r")
    assert templated.source == "template" and "Soft morning light" in templated.value.prompt
    assert templated.value.negative_prompt == "text, logos"
    assert fake_openai.requests == [] and writer.ledger.entries() == []
