"""The metered-call core on its own: no Dagster, no sockets. A paid in-memory backend that reports
hostile numbers goes through `MeteredGenerator`, and the money invariants hold (the contract a new
backend is held to: charges within reservations and caps, ledger equal to the provider's bill)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import BudgetExhaustedError, NonFiniteAmount, PaidFailure, RetriesExhausted
from asset_pipeline.generation.backend import RenderedImage, RenderSession
from asset_pipeline.generation.metered import MeteredGenerator, MeteringPolicy
from asset_pipeline.generation.placeholder import PlaceholderBackend, render_placeholder
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.money_invariants import money_violations

PRICE = 0.01


class PaidMemoryBackend(PlaceholderBackend):
    """Bills PRICE per image, or what `reported` says (a provider reporting garbage)."""

    name = "paid-memory"
    is_paid = True

    def __init__(self, *, reported: float = PRICE, fail_first: int = 0):
        self.reported, self.fail_first, self.billed, self.calls = reported, fail_first, 0.0, 0
        self._lock = threading.Lock()

    def reservation_usd(self, model: str) -> float:
        return PRICE

    def render(self, request: GenerationRequest, session: RenderSession | None = None) -> RenderedImage:
        with self._lock:
            self.calls += 1
            self.billed += PRICE
            failing = self.calls <= self.fail_first
        if failing:
            raise PaidFailure(request.partition_key, "provider failed after billing", billed_usd=PRICE, prediction_id=None)
        return RenderedImage(png=render_placeholder(request), model=request.model, cost_usd=self.reported)


def metered(tmp_path: Path, backend: PaidMemoryBackend, caps: BudgetCaps) -> MeteredGenerator:
    ledger = BudgetLedger(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    policy = MeteringPolicy(caps=caps, max_attempts=3, max_retry_spend_usd=1.0, backoff_base_s=0.0, backoff_cap_s=0.0,
                            max_wait_s=0.0, fallback_models=(), max_outage_s=0.0, poll_interval_s=0.01)
    circuit = CircuitBreaker(ledger.engine, provider=backend.name, config=BreakerConfig())
    return MeteredGenerator(backend=backend, ledger=ledger, circuit=circuit, bucket=TokenBucket(rate=1000, burst=1000),
                            policy=policy)


def request(key: str = "img-00") -> GenerationRequest:
    spec = ImageSpec.model_validate({"id": key, "category": "icon", "prompt": "a brass key", "width": 64, "height": 64})
    return build_request(spec, backend="paid-memory", model="memory/model")


CAPS = BudgetCaps(total_usd=1.0, daily_usd=1.0, per_run_usd=1.0)


def test_generate_then_settle_books_exactly_the_bill(tmp_path: Path) -> None:
    backend = PaidMemoryBackend(fail_first=1)
    core = metered(tmp_path, backend, CAPS)
    pending = core.generate(request(), run_id="run-1")
    core.settle(pending, sha256="0" * 64)
    assert pending.attempts == 2 and backend.calls == 2
    assert core.ledger.status(CAPS).spent_total_usd == pytest.approx(backend.billed)
    assert money_violations(core.ledger.engine, caps=CAPS, provider_bill_usd=backend.billed) == []


@pytest.mark.parametrize("reported", [-1000.0, 1e7])
def test_garbage_reported_costs_are_clamped_into_the_reservation(tmp_path: Path, reported: float) -> None:
    core = metered(tmp_path, PaidMemoryBackend(reported=reported), CAPS)
    core.settle(core.generate(request(), run_id="run-1"), sha256="0" * 64)
    status = core.ledger.status(CAPS)
    assert 0 <= status.spent_total_usd <= PRICE and status.open_reservations == 0


@pytest.mark.parametrize("reported", [math.nan, math.inf])
def test_a_non_finite_cost_is_never_booked(tmp_path: Path, reported: float) -> None:
    core = metered(tmp_path, PaidMemoryBackend(reported=reported), CAPS)
    pending = core.generate(request(), run_id="run-1")
    with pytest.raises(NonFiniteAmount):
        core.settle(pending, sha256="0" * 64)
    status = core.ledger.status(CAPS)  # nothing booked; the reservation stays for a later run to settle
    assert status.spent_total_usd == 0 and status.open_reservations == 1


def test_the_caps_hold_before_anything_is_sent(tmp_path: Path) -> None:
    backend = PaidMemoryBackend()
    core = metered(tmp_path, backend, BudgetCaps(total_usd=0.005, daily_usd=1.0, per_run_usd=1.0))
    with pytest.raises((BudgetExhaustedError, RetriesExhausted)):
        core.generate(request(), run_id="run-1")
    assert backend.calls == 0
