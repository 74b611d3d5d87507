"""Crashes and terminations with predictions in flight: nothing is paid twice, nothing paid is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.helpers import materializations, materialize, pipeline_defs, write_catalog

PROJECT = Path(__file__).parents[2]


def start_cli_run(env: dict[str, str], partition_range: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions",
               "--select", "images", "--partition-range", partition_range]
    # Output goes to a file: an unread pipe fills up with Dagster's logs and blocks the run.
    log = open(Path(env["DAGSTER_HOME"]) / "run.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def run_log(env: dict[str, str]) -> str:
    return (Path(env["DAGSTER_HOME"]) / "run.log").read_text()[-3000:]


def wait_for_journal(journal: PredictionJournal, process: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 120
    while len({row["prediction_id"] for row in _safe_history(journal)}) < count:
        assert process.poll() is None, "the run exited early"
        assert time.monotonic() < deadline, "predictions were never journaled"
        time.sleep(0.1)


def _safe_history(journal: PredictionJournal) -> list[dict]:
    try:
        return journal.history()
    except Exception:  # noqa: BLE001 - the table may not exist until the run opens the ledger
        return []


@pytest.fixture
def run_env(fake_replicate, cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    catalog = write_catalog(tmp_path / "c.yaml", [
        {"id": f"img-{i:02d}", "category": "hero", "prompt": f"a house {i}", "width": 512, "height": 512, "seed": i}
        for i in range(4)
    ])
    return {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "replicate",
            "REPLICATE_API_TOKEN": os.environ["REPLICATE_API_TOKEN"],
            "REPLICATE_BASE_URL": os.environ["REPLICATE_BASE_URL"], "ASSET_PIPELINE_POLL_INTERVAL_S": "0.05"}


def test_a_killed_run_is_resumed_without_creating_predictions_again(fake_replicate, run_env, instance) -> None:
    fake_replicate.latency_s = 4.0
    data_dir = Path(run_env["ASSET_PIPELINE_DATA_DIR"])
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    process = start_cli_run(run_env, "img-00...img-03")
    wait_for_journal(PredictionJournal(engine), process, 4)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert fake_replicate.created_total == 4
    assert BudgetLedger(engine).status(BudgetCaps(20, 10, 20)).open_reservations == 4

    defs = pipeline_defs(Path(run_env["ASSET_PIPELINE_CATALOG"]), data_dir, backend="replicate")
    result = materialize(defs, instance, first="img-00", last="img-03")
    assert result.success
    assert fake_replicate.created_total == 4  # re-attached to all four, created none
    assert max(fake_replicate.creations.values()) == 1
    made = materializations(result)
    assert {meta["prediction_id"] for meta in made.values()} == set(fake_replicate.predictions)
    status = BudgetLedger(engine).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0
    assert status.spent_total_usd == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.012)


def test_terminating_a_run_cancels_its_predictions_and_closes_reservations(fake_replicate, run_env) -> None:
    fake_replicate.latency_s = 60.0
    data_dir = Path(run_env["ASSET_PIPELINE_DATA_DIR"])
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    process = start_cli_run(run_env, "img-00...img-01")
    wait_for_journal(PredictionJournal(engine), process, 2)
    process.send_signal(signal.SIGINT)  # what Dagster's terminate does to an in-process run
    assert process.wait(timeout=60) != 0, run_log(run_env)
    assert {p.status for p in fake_replicate.predictions.values()} == {"canceled"}
    status = BudgetLedger(engine).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0
    assert status.spent_total_usd == pytest.approx(fake_replicate.bill_usd) == 0.0  # per-image model: cancelled is free
    with dg.DagsterInstance.from_config(run_env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()
        assert run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)


def _replicate_generator(tmp_path: Path):
    from asset_pipeline.resources.image_generator import ImageGenerator

    return ImageGenerator(backend="replicate", replicate_api_token=os.environ["REPLICATE_API_TOKEN"],
                          database_url=f"sqlite:///{tmp_path / 'ledger.db'}", poll_interval_s=0.02)


def _dead_runs_reservation(generator, request):
    return generator.ledger.reserve(run_id="dead-run", partition_key=request.partition_key,
                                    request_hash=request.request_hash, model=request.model, amount_usd=0.003,
                                    caps=generator.caps)


def test_a_prediction_created_just_before_its_run_died_is_found_and_adopted(fake_replicate, tmp_path: Path) -> None:
    """The run died after Replicate created the prediction and before the journal recorded its id."""
    import httpx

    from asset_pipeline.catalog.spec import ImageSpec
    from asset_pipeline.generation.pricing import model_name, price_for

    generator = _replicate_generator(tmp_path)
    request = generator.request_for(ImageSpec.model_validate(
        {"id": "img-00", "category": "icon", "prompt": "a brass key", "width": 512, "height": 512, "seed": 3}))
    orphan = _dead_runs_reservation(generator, request)
    inputs = generator.active_backend.model_inputs(request, price_for(generator.prices, request.model))
    created = httpx.post(f"{fake_replicate.base_url}/v1/models/{model_name(request.model)}/predictions",
                         json={"input": inputs}, headers={"Authorization": f"Bearer {fake_replicate.token}"})
    lost_id = created.json()["id"]
    # Unrelated later predictions are skipped: another prompt, and one of another seed.
    for other in ({**inputs, "prompt": "a copper key"}, {**inputs, "seed": 4}):
        httpx.post(f"{fake_replicate.base_url}/v1/models/{model_name(request.model)}/predictions",
                   json={"input": other}, headers={"Authorization": f"Bearer {fake_replicate.token}"})

    backend = generator.active_backend
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert backend.find_prediction(request, created_after=since, exclude=frozenset({lost_id})) is None  # journaled ones
    pending = generator.metered.generate(request, run_id="resume-run", dead_runs=frozenset({"dead-run"}))
    assert pending.rendered.prediction_id == lost_id and pending.reservation == orphan
    assert fake_replicate.created_total == 3 and fake_replicate.list_requests >= 1  # no fourth prediction
    generator.metered.settle(pending, sha256="0" * 64)
    status = generator.ledger.status(BudgetCaps(10, 10, 10))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd - 0.006)


def test_a_dead_runs_reservation_without_a_prediction_is_released(fake_replicate, tmp_path: Path) -> None:
    from asset_pipeline.catalog.spec import ImageSpec

    generator = _replicate_generator(tmp_path)
    request = generator.request_for(ImageSpec.model_validate(
        {"id": "img-00", "category": "icon", "prompt": "a brass key", "width": 512, "height": 512, "seed": 3}))
    orphan = _dead_runs_reservation(generator, request)
    # What image production does after RequestInFlightError: it found the holder's run dead.
    pending = generator.metered.generate(request, run_id="resume-run", dead_runs=frozenset({"dead-run"}))
    assert fake_replicate.created_total == 1 and pending.reservation != orphan
    generator.metered.settle(pending, sha256="0" * 64)
    assert generator.ledger.open_reservation(orphan.reservation_id) is None  # released, not left counting
    status = generator.ledger.status(BudgetCaps(10, 10, 10))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)
