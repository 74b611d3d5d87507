"""Property-based tests of the pure money code (Hypothesis state machine over the real ledger).

Any sequence of reserve / charge / charge-by-provider-report / release / adopt, with any numbers a
provider or a caller may produce (NaN, infinities, negatives, huge, strings), keeps the money
invariants: charges finite, 0 <= charge <= reservation, spend never past a cap, every
reservation closed at most once, one prediction never booked by two reservations. SQLite with many
examples; PostgreSQL (fresh_database) with a few.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import Engine, delete

from asset_pipeline.errors import BudgetExhaustedError, NonFiniteAmount
from asset_pipeline.generation.pricing import DEFAULT_PRICES, billed_usd
from asset_pipeline.ledger.budget_ledger import (
    BudgetLedger,
    Reservation,
)
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps, is_finite_number
from asset_pipeline.ledger.schema import metadata
from asset_pipeline_testing.money_invariants import money_violations
from asset_pipeline_testing.postgres import fresh_database

SDXL = DEFAULT_PRICES["stability-ai/sdxl"]
HASHES = ("a" * 64, "b" * 64)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-1000.0, 1e7, 1e300, -0.0, 5e-324])
REPORTED = ANY_FLOAT | st.integers(-10**400, 10**400) | st.none() | st.text(max_size=8) | st.just(True) | st.lists(st.integers(), max_size=2)
CAP = st.floats(min_value=0, max_value=5, allow_nan=False)


class MoneyMachine(RuleBasedStateMachine):
    engine: Engine  # set on the subclass: one database per test, emptied per example

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        with self.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))
        self.ledger = BudgetLedger(self.engine)
        self.journal = PredictionJournal(self.engine)
        self.caps = BudgetCaps(1.0, 1.0, 1.0)

    @initialize(total=CAP, daily=CAP, per_run=CAP)
    def set_caps(self, total: float, daily: float, per_run: float) -> None:
        self.caps = BudgetCaps(total, daily, per_run)

    @rule(target=reservations, run=st.sampled_from(["run-1", "run-2"]), request_hash=st.sampled_from(HASHES),
          amount=st.floats(min_value=0, max_value=0.5) | ANY_FLOAT)
    def reserve(self, run: str, request_hash: str, amount: float):  # type: ignore[no-untyped-def]
        try:
            return self.ledger.reserve(run_id=run, partition_key="p", request_hash=request_hash,
                                       model="stability-ai/sdxl", amount_usd=amount, caps=self.caps)
        except NonFiniteAmount:
            assert not is_finite_number(amount) or amount < 0
        except BudgetExhaustedError:
            pass
        return None

    @rule(reservation=reservations, amount=ANY_FLOAT | st.integers(-10**400, 10**400))
    def charge(self, reservation: Reservation | None, amount: float) -> None:
        if reservation is None:
            return
        try:
            self.ledger.charge(reservation, amount_usd=amount, prediction_id=None, reason="property")
        except NonFiniteAmount:
            assert not is_finite_number(amount)

    @rule(reservation=reservations, reported=REPORTED, fallback=st.none() | ANY_FLOAT, succeeded=st.booleans())
    def charge_provider_report(self, reservation: Reservation | None, reported: object, fallback: float | None,
                               succeeded: bool) -> None:
        """What the generator books for a time-billed prediction whatever `predict_time` said."""
        if reservation is None:
            return
        max_s = reservation.amount_usd / SDXL.per_second_usd  # the reservation covers the longest run
        bill = billed_usd(SDXL, succeeded=succeeded, predict_time_s=reported, fallback_s=fallback,
                          max_predict_seconds=max_s)
        assert math.isfinite(bill.usd) and bill.usd >= 0
        assert bill.usd <= reservation.amount_usd * (1 + 1e-9) + 1e-12
        self.ledger.charge(reservation, amount_usd=bill.usd, prediction_id=None, reason=bill.note or "billed")

    @rule(reservation=reservations)
    def release(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            self.ledger.release(reservation, reason="property")

    @rule(request_hash=st.sampled_from(HASHES), prediction=st.sampled_from(["p1", "p2", "p3"]),
          adopter=st.sampled_from(["run-1", "run-2", "run-3"]))
    def adopt(self, request_hash: str, prediction: str, adopter: str) -> None:
        """The generator's orphan adoption: an open, unjournaled reservation takes a provider
        prediction that no reservation has journaled yet (never one that is already booked)."""
        found = self.ledger.unjournaled_reservations(request_hash, run_id=adopter, older_than_s=0, own_run_too=True)
        known = set().union(*(self.journal.prediction_ids(h) for h in HASHES))
        for reservation, _ in found[:1]:
            if prediction not in known:
                self.journal.record(reservation, prediction_id=prediction, status="created")

    @invariant()
    def money_invariants_hold(self) -> None:
        assert money_violations(self.engine, caps=self.caps, allow_open=True) == []


def _run(engine: Engine, *, examples: int, steps: int) -> None:
    machine = type("Machine", (MoneyMachine,), {"engine": engine})
    machine.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
                                         suppress_health_check=[HealthCheck.too_slow])
    machine.TestCase().runTest()


def test_money_invariants_hold_for_any_sequence_on_sqlite() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = ledger_engine(f"sqlite:///{Path(folder) / 'ledger.db'}")
        try:
            _run(engine, examples=60, steps=25)
        finally:
            engine.dispose()


@pytest.mark.timeout(300)
def test_money_invariants_hold_for_any_sequence_on_postgres() -> None:
    with fresh_database() as url:
        engine = ledger_engine(url)
        try:
            _run(engine, examples=8, steps=15)
        finally:
            engine.dispose()
