"""A hostile provider against the money code, through the official client and the fake Replicate.

Each test sets one of the fake's hostile money modes (issue 11) and checks what the generator
books: garbage `predict_time` is never booked as is, a lost or garbled create answer never leads to
a second create, a succeeded prediction with unusable output is booked at what it was billed and
not paid for again, and an output that can never be fetched is closed after bounded tries.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import GenerationError, RetriesExhausted
from asset_pipeline.ledger.circuit import BreakerState
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.ledger.schema import prediction_journal
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline_testing.fake_replicate.server import REAL
from asset_pipeline_testing.money_invariants import money_violations
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

CAPS = BudgetCaps(20, 10, 20)
SDXL = "stability-ai/sdxl"
SDXL_MAX_S = 30.0  # reservation: 30 s x $0.000975


def generator(tmp_path: Path, *, model: str | None = None, **settings) -> ImageGenerator:
    return ImageGenerator(backend="replicate", replicate_api_token=TOKEN, model=model,
                          database_url=f"sqlite:///{tmp_path / 'ledger.db'}", poll_interval_s=0.02,
                          backoff_base_s=0.01, max_predict_seconds=SDXL_MAX_S, **settings)


def request_for(gen: ImageGenerator, prompt: str = "a brass key", size: int = 512):
    return gen.request_for(ImageSpec.model_validate(
        {"id": "img-00", "category": "icon", "prompt": prompt, "width": size, "height": size, "seed": 3}))


def violations(gen: ImageGenerator, fake, **extra) -> list[str]:
    return money_violations(gen.ledger.engine, caps=CAPS, provider_bill_usd=fake.bill_usd,
                            creations_per_input=fake.creations, **extra)


@pytest.mark.parametrize("reported", [-1000, 1e7, math.nan, math.inf, -math.inf, 10**400, "fast", "12.5", None, [1]])
def test_garbage_predict_time_is_never_booked_as_is(fake_replicate, tmp_path: Path, reported) -> None:
    fake_replicate.reported_predict_time = reported
    gen = generator(tmp_path, model=SDXL)
    pending = gen.metered.generate(request_for(gen), run_id="run-1")
    reservation = pending.reservation
    assert 0 < pending.rendered.cost_usd <= reservation.amount_usd
    gen.metered.settle(pending, sha256="0" * 64)
    [charge] = [e for e in gen.ledger.entries() if e["kind"] == "charge"]
    assert math.isfinite(charge["amount_usd"]) and 0 < charge["amount_usd"] <= reservation.amount_usd
    # Billed by the prediction's own timestamps: what the provider really billed, not 0, not nonsense.
    assert charge["amount_usd"] == pytest.approx(fake_replicate.bill_usd, abs=2e-6)
    assert "predict_time" in charge["reason"] and "timestamps" in charge["reason"]
    assert violations(gen, fake_replicate) == []


def test_a_plausible_predict_time_is_booked_without_a_note(fake_replicate, tmp_path: Path) -> None:
    gen = generator(tmp_path, model=SDXL)
    pending = gen.metered.generate(request_for(gen), run_id="run-1")
    gen.metered.settle(pending, sha256="0" * 64)
    [charge] = [e for e in gen.ledger.entries() if e["kind"] == "charge"]
    assert charge["reason"] == "charged after the image was stored"
    assert violations(gen, fake_replicate) == []


def test_a_nan_cost_stored_by_an_older_version_does_not_break_later_runs(fake_replicate, tmp_path: Path) -> None:
    gen = generator(tmp_path)
    request = request_for(gen)
    reservation = gen.ledger.reserve(run_id="old-run", partition_key="img-00", request_hash=request.request_hash,
                                     model=request.model, amount_usd=0.003, caps=CAPS)
    gen.journal.record(reservation, prediction_id="p-old", status="succeeded")
    gen.metered.settle_cache_hit(request.request_hash, cost_usd=math.nan)  # the store's record said "cost_usd": NaN
    [charge] = [e for e in gen.ledger.entries() if e["kind"] == "charge"]
    assert charge["amount_usd"] == pytest.approx(0.003) and "not a usable amount" in charge["reason"]


@pytest.mark.parametrize("answer", ["reset", (201, "<html><body>Created</body></html>"), (201, '{"id": 5}'),
                                    (201, "{}"), (502, "<html>Bad Gateway</html>")])
def test_a_lost_or_garbled_create_answer_never_creates_twice(fake_replicate, tmp_path: Path, answer) -> None:
    if answer == "reset":
        fake_replicate.create_resets = 1
    else:
        fake_replicate.create_garbled = [answer]
    gen = generator(tmp_path)
    pending = gen.metered.generate(request_for(gen), run_id="run-1")
    [made] = fake_replicate.predictions
    assert pending.rendered.prediction_id == made and pending.attempts == 2  # adopted, not created again
    assert fake_replicate.created_total == 1 and fake_replicate.list_requests >= 1
    gen.metered.settle(pending, sha256="0" * 64)
    assert len([e for e in gen.ledger.entries() if e["kind"] == "reservation"]) == 1  # one reservation throughout
    assert violations(gen, fake_replicate) == []
    [first] = [a for a in gen.attempt_log.history() if a["attempt"] == 1]
    assert "may exist and be billed" in first["detail"] and "Replicate" in first["detail"]


def test_an_unknown_create_whose_prediction_does_not_exist_releases_and_creates_once(
    fake_replicate, tmp_path: Path
) -> None:
    gen = generator(tmp_path)
    request = request_for(gen)
    reservation = gen.ledger.reserve(run_id="run-1", partition_key="img-00", request_hash=request.request_hash,
                                     model=request.model, amount_usd=0.003, caps=CAPS)  # as a lost create leaves it
    pending = gen.metered.generate(request, run_id="run-1")
    assert fake_replicate.created_total == 1 and pending.reservation != reservation
    assert gen.ledger.open_reservation(reservation.reservation_id) is None  # released: nothing was created
    gen.metered.settle(pending, sha256="0" * 64)
    assert violations(gen, fake_replicate) == []


def test_a_readable_error_answer_releases_the_reservation(fake_replicate, tmp_path: Path) -> None:
    fake_replicate.fail_creates = [500]
    gen = generator(tmp_path)
    pending = gen.metered.generate(request_for(gen), run_id="run-1")
    assert fake_replicate.list_requests == 0 and fake_replicate.created_total == 1
    gen.metered.settle(pending, sha256="0" * 64)
    assert [e["kind"] for e in gen.ledger.entries()] == ["reservation", "release", "reservation", "charge"]
    assert violations(gen, fake_replicate) == []


@pytest.mark.parametrize("output", [[], None, ["file:///etc/passwd"], ["not a url"], "file:///etc/passwd", [None]])
def test_a_succeeded_prediction_with_unusable_output_is_booked_and_not_paid_again(
    fake_replicate, tmp_path: Path, output
) -> None:
    fake_replicate.succeeded_output = output
    gen = generator(tmp_path)
    with pytest.raises(RetriesExhausted) as caught:
        gen.metered.generate(request_for(gen), run_id="run-1")
    [made] = fake_replicate.predictions
    assert fake_replicate.created_total == 1  # no identical retry paid for the same answer
    assert made in caught.value.reason and "succeeded but its output" in caught.value.reason
    assert len(caught.value.attempts) == 1 and caught.value.attempts[0].failure_class == "invalid_output"
    [charge] = [e for e in gen.ledger.entries() if e["kind"] == "charge"]
    assert charge["amount_usd"] == pytest.approx(0.003) == pytest.approx(fake_replicate.bill_usd)
    assert violations(gen, fake_replicate) == []
    assert gen.circuit.state() is BreakerState.CLOSED


@pytest.mark.parametrize("output", [["{base}/money/delivery-down"]])
def test_an_output_that_is_never_fetched_is_closed_after_bounded_tries(fake_replicate, tmp_path: Path, output) -> None:
    fake_replicate.succeeded_output = output
    gen = generator(tmp_path, breaker_failure_threshold=2)  # would open if fetch failures counted as outages
    request = request_for(gen)
    with pytest.raises(GenerationError) as caught:
        gen.metered.generate(request, run_id="run-1")
    [made] = fake_replicate.predictions
    assert fake_replicate.created_total == 1
    assert made in caught.value.reason and "could not be fetched in 3 tries" in caught.value.reason
    assert "unexpected" not in caught.value.reason
    statuses = [row["status"] for row in gen.journal.history(prediction_id=made)]
    assert statuses == ["created", "fetch_failed", "fetch_failed", "fetch_failed", "unfetchable"]
    [charge] = [e for e in gen.ledger.entries() if e["kind"] == "charge"]
    assert charge["amount_usd"] == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.003)
    assert violations(gen, fake_replicate) == []
    assert gen.circuit.state() is BreakerState.CLOSED
    # The next run is never re-attached to it: it creates a fresh prediction (which now delivers).
    fake_replicate.succeeded_output = REAL
    pending = gen.metered.generate(request, run_id="run-2")
    assert pending.rendered.prediction_id != made and fake_replicate.created_total == 2
    gen.metered.settle(pending, sha256="0" * 64)
    assert money_violations(gen.ledger.engine, caps=CAPS, provider_bill_usd=fake_replicate.bill_usd) == []


def test_a_journaled_prediction_too_old_to_re_attach_is_charged_what_it_was_billed(fake_replicate, tmp_path: Path) -> None:
    """Its output is gone (Replicate deletes outputs after an hour): its reservation is closed, not
    left open for ever, and the image is made by a new prediction."""
    gen = generator(tmp_path, max_attempts=1)
    request = request_for(gen)
    fake_replicate.succeeded_output = ["{base}/money/delivery-down"]
    with pytest.raises(GenerationError):
        gen.metered.generate(request, run_id="run-1")  # one failed fetch: journaled, reservation kept open
    [old] = fake_replicate.predictions
    assert gen.ledger.status(CAPS).open_reservations == 1
    with gen.ledger.engine.begin() as connection:
        connection.execute(update(prediction_journal).values(created_at=datetime.now(UTC) - timedelta(hours=2)))
    fake_replicate.succeeded_output = REAL
    pending = gen.metered.generate(request, run_id="run-2")
    assert pending.rendered.prediction_id != old and fake_replicate.created_total == 2
    gen.metered.settle(pending, sha256="0" * 64)
    [expired] = [e for e in gen.ledger.entries() if e["kind"] == "charge" and e["prediction_id"] == old]
    assert expired["amount_usd"] == pytest.approx(0.003) and "expired" in expired["reason"]
    # Created twice on purpose: the first prediction's output was gone for good.
    assert money_violations(gen.ledger.engine, caps=CAPS, provider_bill_usd=fake_replicate.bill_usd) == []


def test_a_garbled_poll_answer_names_the_prediction_and_re_attaches(fake_replicate, tmp_path: Path) -> None:
    fake_replicate.garbled_reads = 1
    gen = generator(tmp_path)
    pending = gen.metered.generate(request_for(gen), run_id="run-1")
    [made] = fake_replicate.predictions
    assert pending.rendered.prediction_id == made and fake_replicate.created_total == 1
    [first] = gen.attempt_log.history()
    assert f"polling prediction {made}" in first["detail"] and "unreadable answer" in first["detail"] and "(JSONDecodeError)" in first["detail"]
    gen.metered.settle(pending, sha256="0" * 64)
    assert violations(gen, fake_replicate) == []
