"""The `ledger` resource: what the spend report, the sensor, the schedule and the commands read,
against the caps in force (recorded by the latest run; the operator's only until then)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from asset_pipeline.config_blocks import BreakerOptions, BudgetOptions
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.circuit import BreakerState, CircuitBreaker
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.ledger.recorded_caps import record_caps
from asset_pipeline.resources.ledger import LedgerResource


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerResource:
    return LedgerResource(database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                          budget=BudgetOptions(total_usd=5, daily_usd=2, per_run_usd=1),
                          breaker=BreakerOptions(minimum_calls=1, cooldown_s=60))


def _spend(ledger: LedgerResource, usd: float, *, model: str = "m/a", key: str = "img-00") -> None:
    books = BudgetLedger(ledger.engine)
    reservation = books.reserve(run_id="run-1", partition_key=key, request_hash=f"h-{key}", model=model,
                                amount_usd=usd, caps=BudgetCaps(100, 100, 100))
    books.charge(reservation, amount_usd=usd, prediction_id=f"p-{key}", reason="stored")


def test_the_operators_caps_hold_until_a_run_records_its_own(ledger: LedgerResource) -> None:
    before = ledger.remaining_budget()
    assert before.source.origin == "environment" and before.source.caps == BudgetCaps(5, 2, 1)
    assert (before.today_usd, before.next_run_usd) == (2.0, 1.0)
    record_caps(ledger.engine, run_id="run-9", caps=BudgetCaps(0.5, 0.3, 0.2))
    after = ledger.remaining_budget()
    assert after.source.origin == "ledger" and after.source.run_id == "run-9"
    assert (after.today_usd, after.next_run_usd) == (0.3, 0.2)


def test_remaining_budget_counts_charges_against_the_caps_in_force(ledger: LedgerResource) -> None:
    _spend(ledger, 0.25, key="img-00")
    _spend(ledger, 0.5, model="m/b", key="img-01")
    remaining = ledger.remaining_budget()
    assert remaining.today_usd == pytest.approx(1.25) and remaining.next_run_usd == 1.0
    record_caps(ledger.engine, run_id="run-2", caps=BudgetCaps(5, 0.75, 5))
    assert ledger.remaining_budget().today_usd == 0.0 and ledger.remaining_budget().next_run_usd == 0.0


def test_spend_summary_and_entries(ledger: LedgerResource) -> None:
    _spend(ledger, 0.25, key="img-00")
    _spend(ledger, 0.5, model="m/b", key="img-01")
    summary = ledger.spend_summary()
    assert summary.total_usd == pytest.approx(0.75) and summary.by_model == {"m/a": 0.25, "m/b": 0.5}
    assert sum(summary.by_day.values()) == pytest.approx(0.75) and summary.open_reservations == 0
    assert [entry["kind"] for entry in ledger.entries(run_id="run-1")] == ["reservation", "charge"] * 2
    assert ledger.entries(run_id="someone-else") == []
    assert ledger.charged_by_request(["h-img-01", "never"]) == {"h-img-01": 0.5}
    with pytest.raises(AttributeError):
        summary.total_usd = 0  # type: ignore[misc]  # frozen


def test_circuit_state_is_the_providers_as_every_run_sees_it(ledger: LedgerResource) -> None:
    assert ledger.circuit(provider="replicate").state is BreakerState.CLOSED
    CircuitBreaker(ledger.engine, provider="replicate", config=ledger.breaker.config).record(ok=False, trial=False)
    state = ledger.circuit(provider="replicate")
    assert state.is_open and 0 < state.open_for_s <= 60
    assert not ledger.circuit(provider="diffusers").is_open  # per provider


def test_an_unusable_database_fails_by_the_drivers_reason_without_the_password(tmp_path: Path) -> None:
    broken = LedgerResource(database_url="postgresql://user:hunter2@127.0.0.1:1/none")
    with pytest.raises(SQLAlchemyError) as caught:
        broken.remaining_budget()
    assert "hunter2" not in str(caught.value)
