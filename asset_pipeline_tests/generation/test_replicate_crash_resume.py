"""Crashes and terminations with predictions in flight: nothing is paid twice, nothing paid is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_tests.helpers import materializations, materialize, pipeline_defs, write_catalog

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
