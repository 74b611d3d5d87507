"""The budget ledger: caps over charges plus open reservations, append-only history, and races.

Eight processes reserving at once on one small budget never pass it together, on SQLite
(`BEGIN IMMEDIATE`) and PostgreSQL (advisory lock).
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from asset_pipeline.errors import BudgetExhaustedError
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.ledger_race import reserve_until_exhausted
from asset_pipeline_testing.postgres import fresh_database

CAPS = BudgetCaps(total_usd=1.0, daily_usd=0.5, per_run_usd=0.3)


def reserve(ledger: BudgetLedger, amount: float, run_id: str = "run-1"):
    return ledger.reserve(run_id=run_id, partition_key="p", request_hash="a" * 64, model="m", amount_usd=amount, caps=CAPS)


@pytest.fixture
def ledger(tmp_path: Path) -> BudgetLedger:
    return BudgetLedger(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))


def test_open_reservations_count_against_the_caps_until_closed(ledger: BudgetLedger) -> None:
    first = reserve(ledger, 0.2)
    with pytest.raises(BudgetExhaustedError, match="the per-run cap is \\$0.3000, \\$0.2000 is already"):
        reserve(ledger, 0.15)
    assert ledger.release(first, reason="provider said no")
    assert not ledger.release(first, reason="twice")  # closing is idempotent
    second = reserve(ledger, 0.25)
    assert ledger.charge(second, amount_usd=0.25, prediction_id="p1", reason="stored")
    with pytest.raises(BudgetExhaustedError) as caught:
        reserve(ledger, 0.1)
    assert caught.value.cap == "per-run"
    reserve(ledger, 0.2, run_id="run-2")
    with pytest.raises(BudgetExhaustedError, match="daily cap"):
        reserve(ledger, 0.1, run_id="run-3")
    status = ledger.status(CAPS)
    assert (status.spent_total_usd, status.reserved_usd, status.open_reservations) == (0.25, pytest.approx(0.2), 1)
    assert [e["kind"] for e in ledger.entries()] == ["reservation", "release", "reservation", "charge", "reservation"]
    assert ledger.spent_by_run("run-1") == 0.25


def race(url: str) -> tuple[int, float]:
    caps = BudgetCaps(total_usd=0.25, daily_usd=10, per_run_usd=10)
    ledger_engine(url)  # create the tables once, before the race
    start_at = time.time() + 2.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        results = pool.starmap(reserve_until_exhausted, [(url, n, start_at, 0.01, caps) for n in range(8)])
    status = BudgetLedger(ledger_engine(url)).status(caps)
    assert status.reserved_usd <= 0.25 + 1e-9
    made = sum(count for count, _ in results)
    assert made == 25 and status.open_reservations == 25
    return made, max(seconds for _, seconds in results)


def test_eight_processes_never_pass_the_cap_on_sqlite(tmp_path: Path) -> None:
    race(f"sqlite:///{tmp_path / 'race.db'}")


def test_eight_processes_never_pass_the_cap_on_postgres() -> None:
    with fresh_database() as url:
        race(url)
