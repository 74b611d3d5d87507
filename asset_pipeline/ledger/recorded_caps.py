"""The caps runs used, recorded in the ledger: one source of truth for the hub and the commands.

A run records its caps when it starts. Readers (the hub's dashboard, `asset-pipeline budget`,
`estimate`) take the latest recorded caps, and fall back to their own environment only while no
run has recorded any; `CapsSource.origin` says which, so the output can tell the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from asset_pipeline.ledger.database import aware
from asset_pipeline.ledger.money import BudgetCaps, to_micros, to_usd
from asset_pipeline.ledger.schema import run_caps


@dataclass(frozen=True)
class CapsSource:
    caps: BudgetCaps
    origin: str  # "ledger" (recorded by a run) or "environment" (nothing recorded yet)
    run_id: str | None = None
    recorded_at: datetime | None = None

    def describe(self) -> str:
        if self.origin == "ledger":
            return f"as recorded by run {self.run_id} at {self.recorded_at:%Y-%m-%d %H:%M:%S} UTC"
        return "from this process's environment: no run has recorded its caps yet"


def record_caps(engine: Engine, *, run_id: str, caps: BudgetCaps) -> None:
    """Record the caps `run_id` runs with (an append: no lock)."""
    with engine.begin() as connection:
        connection.execute(insert(run_caps).values(
            run_id=run_id, total_micros=to_micros(caps.total_usd), daily_micros=to_micros(caps.daily_usd),
            per_run_micros=to_micros(caps.per_run_usd), created_at=datetime.now(UTC),
        ))


def current_caps(engine: Engine, *, fallback: BudgetCaps) -> CapsSource:
    """The latest recorded caps, or `fallback` (the reader's environment) when none are recorded."""
    with engine.connect() as connection:
        row = connection.execute(select(run_caps).order_by(run_caps.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return CapsSource(fallback, "environment")
    caps = BudgetCaps(to_usd(row["total_micros"]), to_usd(row["daily_micros"]), to_usd(row["per_run_micros"]))
    return CapsSource(caps, "ledger", run_id=row["run_id"], recorded_at=aware(row["created_at"]))
