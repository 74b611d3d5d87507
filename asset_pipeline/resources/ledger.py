"""The ledger as its readers see it: `spend_report`, the failed-images sensor, the images schedule and
the operator commands. A few narrow, typed reads returning frozen dataclasses, so none of them reaches
through the generator to its ledger, caps or circuit breaker.

Every budget answer is against the caps in force: the caps the latest run recorded in the ledger
(`ledger/recorded_caps.py`), the same ones the hub and `asset-pipeline budget` show, and this
resource's own (the operator's environment) only while no run has recorded any. The database URL
is bound as `dg.EnvVar` when it comes from ASSET_PIPELINE_DATABASE_URL (`resources/configured.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from asset_pipeline.config_blocks import BreakerOptions, BudgetOptions
from asset_pipeline.ledger.budget_ledger import BudgetLedger, BudgetStatus
from asset_pipeline.ledger.charges import charged_by_request
from asset_pipeline.ledger.circuit import BreakerState, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.recorded_caps import CapsSource, current_caps
from asset_pipeline.resources.run_config_guard import enforce_operator_config
from asset_pipeline.settings import from_settings


@dataclass(frozen=True)
class RemainingBudget:
    """What may still be spent, against the caps in force (`source` says where they come from)."""

    source: CapsSource
    status: BudgetStatus

    @property
    def today_usd(self) -> float:
        return self.status.remaining_today_usd

    @property
    def next_run_usd(self) -> float:
        """What one more run may spend: today's remainder, at most the per-run cap."""
        return min(self.status.remaining_today_usd, self.source.caps.per_run_usd)


@dataclass(frozen=True)
class SpendSummary:
    """Where the money went: charges in total, by UTC day and by model, and what is still reserved."""

    total_usd: float
    by_day: dict[str, float]
    by_model: dict[str, float]
    open_reservations: int
    reserved_usd: float


@dataclass(frozen=True)
class CircuitState:
    """One provider's circuit breaker, as every run sees it through the ledger."""

    provider: str
    state: BreakerState
    open_for_s: float

    @property
    def is_open(self) -> bool:
        return self.state is BreakerState.OPEN


# Run config changes none of it: the operator's environment decides where the ledger is and what the
# caps and the breaker are (a run lowers its own caps on `image_generator`, which records them).
FIXED_FIELDS = {
    "database_url": "ASSET_PIPELINE_DATABASE_URL",
    "budget": "ASSET_PIPELINE_BUDGET_*",
    "breaker": "ASSET_PIPELINE_BREAKER_*",
}


class LedgerResource(dg.ConfigurableResource):
    """Reads the budget ledger (reservations, charges, recorded caps, circuit events)."""

    database_url: str = Field(
        default_factory=from_settings("ledger_url"),
        description="Ledger database, a SQLAlchemy URL (ASSET_PIPELINE_DATABASE_URL); bind it with dg.EnvVar.",
    )
    budget: BudgetOptions = Field(
        default_factory=from_settings("budget"),
        description="The operator's caps, used only while no run has recorded its caps in the ledger.",
    )
    breaker: BreakerOptions = Field(
        default_factory=from_settings("breaker"), description="The circuit breaker's settings (ASSET_PIPELINE_BREAKER_*)."
    )

    _engine: Engine | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        enforce_operator_config(self, context, label="ledger", fixed=FIXED_FIELDS)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        """The ledger's engine, opened (and its tables created) on first use."""
        with self._lock:
            if self._engine is None:
                self._engine = ledger_engine(self.database_url)
            return self._engine

    def caps_in_force(self) -> CapsSource:
        """The caps the latest run recorded; the operator's (this resource's) while none is recorded."""
        return current_caps(self.engine, fallback=self.budget.caps)

    def remaining_budget(self) -> RemainingBudget:
        source = self.caps_in_force()
        return RemainingBudget(source=source, status=BudgetLedger(self.engine).status(source.caps))

    def spend_summary(self) -> SpendSummary:
        ledger = BudgetLedger(self.engine)
        status = ledger.status(self.caps_in_force().caps)
        return SpendSummary(total_usd=status.spent_total_usd, by_day=ledger.spend_by("day"),
                            by_model=ledger.spend_by("model"), open_reservations=status.open_reservations,
                            reserved_usd=status.reserved_usd)

    def circuit(self, *, provider: str) -> CircuitState:
        breaker = CircuitBreaker(self.engine, provider=provider, config=self.breaker.config)
        return CircuitState(provider=provider, state=breaker.state(), open_for_s=breaker.open_for_s())

    def charged_by_request(self, request_hashes: Iterable[str]) -> dict[str, float]:
        """Request hash -> USD charged for it in total; hashes never charged are absent."""
        return charged_by_request(self.engine, request_hashes)

    def entries(self, *, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every reservation, charge and release (of `run_id` only, if given), oldest first, as JSON-ready rows."""
        return BudgetLedger(self.engine).entries(run_id=run_id)
