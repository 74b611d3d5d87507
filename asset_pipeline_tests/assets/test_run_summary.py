"""The block of lines a run ends with: counts, failures by reason and spend against each cap, with
no Python reprs."""

from __future__ import annotations

from asset_pipeline.assets.run_summary import RunTally, summary_lines
from asset_pipeline.ledger.budget_ledger import BudgetStatus
from asset_pipeline.ledger.money import BudgetCaps


def tally() -> RunTally:
    counts = RunTally()
    counts.add(error=None, failure_kind="", cache_hit=False, fallback=False)
    counts.add(error=None, failure_kind="", cache_hit=True, fallback=False)
    counts.add(error="provider unavailable since ...", failure_kind="provider_unavailable", cache_hit=False, fallback=False)
    counts.add(error="budget", failure_kind="budget_exhausted", cache_hit=False, fallback=False)
    counts.add(error="budget", failure_kind="budget_exhausted", cache_hit=False, fallback=False)
    return counts


def test_a_paid_run_names_each_cap_and_each_failure_reason() -> None:
    status = BudgetStatus(BudgetCaps(5.0, 2.0, 1.0), spent_total_usd=1.25, spent_today_usd=0.5, reserved_usd=0.003,
                          open_reservations=1)
    text = "\n".join(summary_lines(tally(), total=5, spent_run_usd=0.25, status=status))
    assert "materialized   2 (1 generated, 1 cache hit(s))" in text
    assert "failed         3" in text and "budget_exhausted       2" in text and "provider_unavailable   1" in text
    assert "spent this run $0.2500 of the $1.00 per-run cap" in text
    assert "spent today    $0.5000 of the $2.00 daily cap" in text
    assert "spent in total $1.2500 of the $5.00 total cap ($0.0030 still reserved)" in text
    assert "BudgetCaps(" not in text and "BudgetStatus(" not in text


def test_a_free_run_says_it_spent_nothing() -> None:
    lines = summary_lines(RunTally(), total=0, spent_run_usd=None, status=None)
    assert lines[-1] == "  spent          nothing (free backend)"
