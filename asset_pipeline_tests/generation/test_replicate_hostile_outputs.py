"""Hostile outputs through the official client against the fake provider: each bad output fails its
image with a message naming the prediction and the cause, is never paid for twice, and is charged
as billed or keeps its reservation for the next run; a run terminated mid-download stops within
seconds and charges nothing, and the next run re-attaches to the same prediction."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import GenerationError, RetriesExhausted
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.resources.image_generator import ImageGenerator

CAPS = BudgetCaps(20, 10, 20)


def generator(tmp_path: Path, **options) -> ImageGenerator:
    return ImageGenerator(backend="replicate", replicate_api_token=os.environ["REPLICATE_API_TOKEN"],
                          database_url=f"sqlite:///{tmp_path / 'ledger.db'}", poll_interval_s=0.02, **options)


def request(gen: ImageGenerator, marker: str, *, key: str = "img-00", size: int = 1024):
    spec = {"id": key, "category": "icon", "prompt": f"a brass key {marker}", "width": size, "height": size, "seed": 3}
    return gen.request_for(ImageSpec.model_validate(spec))


def failure(gen: ImageGenerator, marker: str, **kwargs) -> str:
    with pytest.raises(RetriesExhausted) as caught:
        gen.metered.generate(request(gen, marker), run_id="run-1", **kwargs)
    return caught.value.reason


@pytest.mark.parametrize(("marker", "cause", "klass"), [
    ("[[tiny]]", "returned 1x1, expected about 1024x1024 (aspect ratio 1:1) to fit to 1024x1024", "invalid_output"),
    ("[[pixelbomb]]", "output is an image of 13000x13000 (169.0 MP), over the 4.2 MP allowed for it; refused before decoding",
     "invalid_output"),
    ("[[corrupt]]", "output is not a decodable image", "invalid_output"),
])
def test_unusable_images_are_charged_once_and_not_retried(fake_replicate, tmp_path: Path, marker, cause, klass) -> None:
    gen = generator(tmp_path)
    reason = failure(gen, marker)
    [prediction_id] = fake_replicate.predictions
    assert reason.startswith(f"prediction {prediction_id} {cause}")
    assert reason.endswith(f"(after 1 attempt(s): {klass}->fail)")
    assert fake_replicate.created_total == 1  # the identical request is not paid for again
    status = gen.ledger.status(CAPS)
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd) == 0.003


@pytest.mark.parametrize(("marker", "cause"), [
    ("[[foreignhost]]", "succeeded but its output is on host 'http://localhost:"),
    ("[[redirectaway]]", "succeeded but its output is on host 'http://localhost:"),
    ("[[redirectloop]]", "succeeded but its output redirected more than 5 times"),
    ("[[fileurl]]", "succeeded but its output uses the scheme 'file'"),
    ("[[garbagedata]]", "succeeded but its output is a data: URI whose base64 is invalid"),
    ("[[expired]]", "succeeded but its output is gone from"),
])
def test_refused_deliveries_name_the_prediction_and_are_not_fetched_or_paid_again(
    fake_replicate, tmp_path: Path, marker: str, cause: str
) -> None:
    gen = generator(tmp_path)
    reason = failure(gen, marker)
    [prediction_id] = fake_replicate.predictions
    assert reason.startswith(f"prediction {prediction_id} {cause}") and "invalid_output->fail" in reason
    assert os.environ["REPLICATE_API_TOKEN"] not in reason
    expected_fetches = 1 if marker == "[[expired]]" else 0  # nothing fetched from a host not allowed
    assert fake_replicate.delivery_requests["files"] == expected_fetches
    assert fake_replicate.created_total == 1
    status = gen.ledger.status(CAPS)  # charged, or left open for the run that decides (never both, never lost)
    assert status.spent_total_usd + status.reserved_usd == pytest.approx(fake_replicate.bill_usd) == 0.003


def test_a_dripping_delivery_fails_at_the_deadline_and_is_re_attached_later(fake_replicate, tmp_path: Path) -> None:
    fake_replicate.drip_interval_s = 0.3
    gen = generator(tmp_path, download_timeout_s=1.5, max_attempts=1)
    started = time.monotonic()
    reason = failure(gen, "[[drip]]")
    assert time.monotonic() - started < 6
    assert "could not be downloaded: the download did not finish within 1.5 s (ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S)" in reason
    assert reason.endswith("(after 1 attempt(s): output_not_fetched->fail)")
    assert gen.ledger.status(CAPS).open_reservations == 1 and gen.ledger.status(CAPS).spent_total_usd == 0

    fake_replicate.drip_enabled = False  # the delivery recovers; the next run re-attaches for free
    pending = gen.metered.generate(request(gen, "[[drip]]"), run_id="run-2")
    gen.metered.settle(pending, sha256="0" * 64)
    assert fake_replicate.created_total == 1
    status = gen.ledger.status(CAPS)
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)


def test_a_run_terminated_during_a_drip_stops_within_seconds_and_charges_nothing(fake_replicate, tmp_path: Path) -> None:
    fake_replicate.drip_interval_s = 0.5
    gen = generator(tmp_path)  # the default 120 s deadline: only the cancellation can stop it quickly
    cancelled = threading.Event()
    threading.Thread(target=lambda: fake_replicate.drip_started.wait(30) and cancelled.set(), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(GenerationError, match="run terminated while downloading prediction") as caught:
        gen.metered.generate(request(gen, "[[drip]]"), run_id="run-1", cancelled=cancelled)
    assert time.monotonic() - started < 10, caught.value.reason
    status = gen.ledger.status(CAPS)
    assert status.spent_total_usd == 0 and status.open_reservations == 1
    [journaled] = gen.journal.history()
    assert journaled["prediction_id"] in fake_replicate.predictions


def test_an_open_circuit_after_a_failure_names_the_failure(fake_replicate, tmp_path: Path) -> None:
    gen = generator(tmp_path, breaker_minimum_calls=1, breaker_window_calls=1, backoff_base_s=0.0, max_outage_s=0)
    with pytest.raises(GenerationError) as caught:
        gen.metered.generate(request(gen, "[[fail]]"), run_id="run-1")
    reason = caught.value.reason
    assert reason.startswith("provider unavailable since ") and "injected model failure" in reason
    assert "transient->backoff" in reason


def test_a_huge_inline_output_is_refused_while_it_streams_in(fake_replicate, tmp_path: Path) -> None:
    """An 8 MB `data:` URI inside the prediction's JSON is never read whole: the client's answers
    are capped at twice the download limit (here 1 MB), so memory stays bounded."""
    gen = generator(tmp_path, max_download_mb=1, max_attempts=2)
    reason = failure(gen, "[[hugedata]]")
    assert reason.startswith("Replicate sent an answer too large to read (answer from http://127.0.0.1:")
    assert "is longer than 3145728 bytes" in reason and "keeps its reservation and the next run re-attaches" in reason
    assert fake_replicate.created_total == 1  # re-attached, never created again
    assert gen.ledger.status(CAPS).spent_total_usd <= fake_replicate.bill_usd
