"""Hostile LLM answers and settings: an over-long answer with a bidi override is refused after one
repair; garbage usage counts are never booked as such (the reservation is charged instead); a price
table that is not usable is refused naming ASSET_PIPELINE_LLM_PRICES."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline.errors import ConfigurationError, PromptError
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.prompting.pricing import parse_price_table
from asset_pipeline.settings import load_settings
from asset_pipeline_testing.money_invariants import money_violations
from asset_pipeline_tests.prompting.test_writer import STYLE_GUIDE, make_writer, spec


def test_an_over_long_bidi_answer_is_refused(fake_openai, tmp_path: Path) -> None:
    fake_openai.brief_faults = {"grandmother": "hostile"}
    writer = make_writer(fake_openai, tmp_path)
    with pytest.raises(PromptError) as failure:
        writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    assert failure.value.failure_class == "invalid_answer" and len(fake_openai.requests) == 2
    assert not list((tmp_path / "prompts").glob("*.json"))  # nothing stored


def test_garbage_usage_is_charged_as_reserved(fake_openai, tmp_path: Path) -> None:
    fake_openai.faults = ["garbage_usage"]
    writer = make_writer(fake_openai, tmp_path)
    writer.write(spec(), STYLE_GUIDE, run_id="run-1")
    [reservation, charge] = writer.ledger.entries()
    assert charge["amount_usd"] == reservation["amount_usd"] > 0
    assert money_violations(writer.ledger.engine, caps=BudgetCaps(5, 5, 5)) == []


@pytest.mark.parametrize(("table", "problem"), [
    ("not json", "is not JSON"),
    ('["a"]', "must be a JSON object"),
    ('{"m": [1]}', "price of model 'm'"),
    ('{"m": [NaN, 1]}', "between 0 and 1000"),
    ('{"m": [-1, 1]}', "between 0 and 1000"),
    ('{"m": {"input_per_million": 1e400, "output_per_million": 1}}', "between 0 and 1000"),
    ('{"m": {"input": 1}}', "price of model 'm'"),
])
def test_unusable_price_tables_are_refused(table: str, problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_price_table(table)
    monkeypatch.setenv("ASSET_PIPELINE_LLM_PRICES", table)
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_LLM_PRICES"):
        load_settings()
