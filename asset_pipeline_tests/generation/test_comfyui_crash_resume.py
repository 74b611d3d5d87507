"""Crashes and terminations with ComfyUI prompts in flight, with the real CLI in a subprocess: a
killed run's prompts are re-attached through /history (never queued again); a terminated run
interrupts its running prompt, deletes its queued one and charges only the GPU time used."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import materializations, materialize, write_catalog
from asset_pipeline_tests.generation.comfyui_support import CAPS, GPU_HOUR_USD, comfy_defs, entries, ledger, violations

PROJECT = Path(__file__).parents[2]


def start_cli_run(env: dict[str, str], partition_range: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions",
               "--select", "images", "--partition-range", partition_range]
    log = open(Path(env["DAGSTER_HOME"]) / "run.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def run_log(env: dict[str, str]) -> str:
    return (Path(env["DAGSTER_HOME"]) / "run.log").read_text()[-3000:]


def wait_for_prompts(journal: PredictionJournal, process: subprocess.Popen, count: int, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            journaled = {row["prediction_id"] for row in journal.history()}
        except Exception:  # noqa: BLE001 - the table may not exist until the run opens the ledger
            journaled = set()
        if len(journaled) >= count:
            return
        assert process.poll() is None, run_log(env)
        assert time.monotonic() < deadline, "prompts were never journaled"
        time.sleep(0.05)


@pytest.fixture
def server():
    with running_fake_comfyui(FakeComfyState(job_seconds=3.0)) as state:
        yield state


@pytest.fixture
def run_env(server: FakeComfyState, cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    catalog = write_catalog(tmp_path / "c.yaml", entries(2))
    return {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "comfyui",
            "ASSET_PIPELINE_COMFYUI_URL": server.base_url, "ASSET_PIPELINE_GPU_HOUR_USD": str(GPU_HOUR_USD),
            "ASSET_PIPELINE_COMFYUI_QUEUE_DEPTH": "2", "ASSET_PIPELINE_COMFYUI_MAX_JOB_SECONDS": "20",
            "ASSET_PIPELINE_POLL_INTERVAL_S": "0.05", "ASSET_PIPELINE_HUB_ENABLED": "false"}


def test_a_killed_run_re_attaches_through_history_without_queueing_again(server, run_env, instance) -> None:
    data_dir = Path(run_env["ASSET_PIPELINE_DATA_DIR"])
    process = start_cli_run(run_env, "img-00...img-01")
    wait_for_prompts(PredictionJournal(ledger(data_dir).engine), process, 2, run_env)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(server.submitted) == 2
    assert ledger(data_dir).status(CAPS).open_reservations == 2

    result = materialize(comfy_defs(Path(run_env["ASSET_PIPELINE_CATALOG"]), data_dir, [server]), instance,
                         first="img-00", last="img-01")
    assert result.success
    assert len(server.submitted) == 2  # re-attached to both, queued none
    made = materializations(result)
    assert {meta["prediction_id"] for meta in made.values()} == {f"{p}@{server.base_url}" for p in server.submitted}
    assert ledger(data_dir).status(CAPS).open_reservations == 0
    assert violations(data_dir, [server]) == []


def test_terminating_a_run_interrupts_and_deletes_its_prompts(server, run_env) -> None:
    server.job_seconds = 60.0
    data_dir = Path(run_env["ASSET_PIPELINE_DATA_DIR"])
    process = start_cli_run(run_env, "img-00...img-01")
    wait_for_prompts(PredictionJournal(ledger(data_dir).engine), process, 2, run_env)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # what Dagster's terminate does to an in-process run
    assert process.wait(timeout=60) != 0, run_log(run_env)
    assert server.interrupts == 1 and len(server.deletes) == 1  # one was running, one queued
    assert server.running is None and server.pending == []
    status = ledger(data_dir).status(CAPS)
    assert status.open_reservations == 0
    assert 0 < status.spent_total_usd < 0.01  # the seconds the running one used, at $0.001/s
    assert violations(data_dir, [server]) == []
    with dg.DagsterInstance.from_config(run_env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()
        assert run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
