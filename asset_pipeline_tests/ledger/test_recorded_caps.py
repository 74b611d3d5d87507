"""Caps recorded per run: readers take the latest recorded ones, and their environment only while
none is recorded, saying which."""

from __future__ import annotations

from pathlib import Path

from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.ledger.recorded_caps import current_caps, record_caps


def test_the_latest_recorded_caps_win_over_the_environment(tmp_path: Path) -> None:
    engine = ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    environment = BudgetCaps(20, 10, 20)
    nothing = current_caps(engine, fallback=environment)
    assert nothing.caps == environment and nothing.origin == "environment"
    assert "no run has recorded its caps yet" in nothing.describe()

    record_caps(engine, run_id="run-1", caps=BudgetCaps(5, 2, 2))
    record_caps(engine, run_id="run-2", caps=BudgetCaps(5, 2.5, 0.75))
    latest = current_caps(engine, fallback=environment)
    assert latest.caps == BudgetCaps(5, 2.5, 0.75) and latest.origin == "ledger" and latest.run_id == "run-2"
    assert latest.describe().startswith("as recorded by run run-2 at ")
