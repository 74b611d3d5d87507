"""Worker for the reservation race: reserve small amounts until the budget says no."""

from __future__ import annotations

import time

from asset_pipeline.errors import BudgetExhaustedError
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps


def reserve_until_exhausted(url: str, worker: int, start_at: float, amount_usd: float, caps: BudgetCaps) -> tuple[int, float]:
    """Returns (reservations made, seconds spent reserving)."""
    ledger = BudgetLedger(ledger_engine(url))
    time.sleep(max(0.0, start_at - time.time()))
    made, started = 0, time.perf_counter()
    while True:
        try:
            ledger.reserve(run_id=f"run-{worker}", partition_key=f"p-{worker}-{made}", request_hash="0" * 64,
                           model="m", amount_usd=amount_usd, caps=caps)
        except BudgetExhaustedError:
            return made, time.perf_counter() - started
        made += 1
