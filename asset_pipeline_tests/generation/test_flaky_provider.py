"""A flaky provider, driven the way a user runs the catalog: `dagster asset materialize
--partition-range` through the real CLI against the fake Replicate server.

- 30% of predictions fail at random: one run materializes >= 39 of 40 partitions, each failed
  attempt is one WARNING line, the run ends with a readable summary, nothing is paid twice and the
  ledger equals the fake's bill; the caps the run used are what `asset-pipeline budget` and the
  real hub report, whatever their own environment says.
- the provider is fully down for a few seconds mid-run: the run waits and finishes every partition.
- down longer than ASSET_PIPELINE_MAX_OUTAGE_S: the remaining partitions fail with "provider
  unavailable since ..."; a later run re-attaches to what was in flight and pays nothing twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState
from asset_pipeline_testing.helpers import image_statuses, pipeline_defs, write_catalog
from asset_pipeline_testing.serving import free_port
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

PROJECT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def flaky_env(fake: FakeReplicateState, cli_env: dict[str, str], tmp_path: Path, count: int) -> dict[str, str]:
    catalog = write_catalog(tmp_path / "c.yaml", [
        {"id": f"img-{i:02d}", "category": "icon", "prompt": f"a key number {i}", "width": 512, "height": 512, "seed": i}
        for i in range(count)
    ])
    return {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "replicate",
            "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": fake.base_url,
            "ASSET_PIPELINE_POLL_INTERVAL_S": "0.05", "ASSET_PIPELINE_BACKOFF_BASE_S": "0.05",
            "ASSET_PIPELINE_MAX_CONCURRENCY": "8", "ASSET_PIPELINE_REQUESTS_PER_SECOND": "50",
            "ASSET_PIPELINE_BREAKER_COOLDOWN_S": "1", "ASSET_PIPELINE_HUB_ENABLED": "false"}


def materialize_command(count: int) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images",
            "--partition-range", f"img-00...img-{count - 1:02d}"]


def statuses(env: dict[str, str]):  # type: ignore[no-untyped-def]
    defs = pipeline_defs(Path(env["ASSET_PIPELINE_CATALOG"]), Path(env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return image_statuses(defs, instance)


def ledger(env: dict[str, str]) -> BudgetLedger:
    return BudgetLedger(ledger_engine(f"sqlite:///{Path(env['ASSET_PIPELINE_DATA_DIR']) / 'ledger.db'}"))


def paid_twice(fake: FakeReplicateState) -> dict[str, int]:
    """Inputs the fake made (and billed) more than one image for."""
    made = Counter(json.dumps([p.model, p.input], sort_keys=True) for p in fake.predictions.values()
                   if p.status == "succeeded")
    return {key: count for key, count in made.items() if count > 1}


def test_random_faults_end_in_one_round_with_visible_retries_and_one_source_of_caps(
    fake_replicate, cli_env, tmp_path: Path
) -> None:
    fake_replicate.failure_rate = 0.3
    fake_replicate.latency_s = 0.1
    env = {**flaky_env(fake_replicate, cli_env, tmp_path, 40), "ASSET_PIPELINE_BUDGET_TOTAL_USD": "2",
           "ASSET_PIPELINE_BUDGET_DAILY_USD": "1.5", "ASSET_PIPELINE_BUDGET_PER_RUN_USD": "0.5"}
    done = subprocess.run(materialize_command(40), cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    made = statuses(env).materialized
    assert len(made) >= 39, output[-4000:]
    assert not paid_twice(fake_replicate)
    status = ledger(env).status(BudgetCaps(2, 1.5, 0.5))
    assert status.open_reservations == 0
    assert status.spent_total_usd == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.003 * len(made))

    # Each failed attempt is one WARNING line naming partition, class, strategy, error and wait.
    failed_predictions = sum(1 for p in fake_replicate.predictions.values() if p.status == "failed")
    warnings = [line for line in output.splitlines() if " - WARNING - " in line and "attempt " in line]
    assert failed_predictions > 0 and len(warnings) == failed_predictions
    assert any("(transient, strategy backoff): prediction " in line and "injected transient failure" in line
               and "; next attempt in " in line for line in warnings)
    # The run ends with a readable summary: no Python reprs.
    assert "run summary" in output and f"  materialized   {len(made)} ({len(made)} generated, 0 cache hit(s))" in output
    assert "of the $0.50 per-run cap" in output and "of the $1.50 daily cap" in output
    assert "BudgetCaps(" not in output and "key: key" not in output

    # Commands and the hub read the caps the run used, not their own environment.
    elsewhere = {**env, "ASSET_PIPELINE_BUDGET_TOTAL_USD": "20", "ASSET_PIPELINE_BUDGET_DAILY_USD": "10"}
    budget = json.loads(subprocess.run([str(BIN / "asset-pipeline"), "budget", "--json"], cwd=PROJECT, env=elsewhere,
                                       capture_output=True, text=True, timeout=120).stdout)
    assert budget["caps"] == {"total_usd": 2.0, "daily_usd": 1.5, "per_run_usd": 0.5}
    assert budget["caps_source"] == "ledger"
    text = subprocess.run([str(BIN / "asset-pipeline"), "budget"], cwd=PROJECT, env=elsewhere, capture_output=True,
                          text=True, timeout=120).stdout
    assert "per run $0.50 (as recorded by run " in text
    assert _hub_caps(elsewhere, tmp_path) == (2.0, 1.5, "as recorded by run")


def _hub_caps(env: dict[str, str], tmp_path: Path) -> tuple[float, float, str]:
    port = free_port()
    log = open(tmp_path / "hub.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(BIN / "asset-pipeline"), "hub", "--port", str(port)], cwd=PROJECT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:  # the dashboard's view: the monitor channel's snapshot carries the spend
                with connect(f"ws://127.0.0.1:{port}/ws/monitor", open_timeout=5) as monitor:
                    message = json.loads(monitor.recv(timeout=5))
                    while message["type"] != "snapshot":
                        message = json.loads(monitor.recv(timeout=5))
                spend = message.get("spend")
                if spend:
                    return spend["cap_total_usd"], spend["cap_daily_usd"], spend["caps_source"][:18]
            except (OSError, TimeoutError, InvalidStatus):
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_before_any_run_the_commands_say_the_caps_come_from_their_environment(cli_env) -> None:
    done = subprocess.run([str(BIN / "asset-pipeline"), "budget"], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env={**cli_env, "ASSET_PIPELINE_BUDGET_DAILY_USD": "3"})
    assert "daily $3.00" in done.stdout and "from this process's environment: no run has recorded" in done.stdout


def _start(env: dict[str, str], count: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(materialize_command(count), cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_creations(fake: FakeReplicateState, process: subprocess.Popen, count: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while fake.created_total < count:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def test_a_short_outage_mid_run_is_waited_out(fake_replicate, cli_env, tmp_path: Path) -> None:
    fake_replicate.latency_s = 0.3
    env = {**flaky_env(fake_replicate, cli_env, tmp_path, 30), "ASSET_PIPELINE_MAX_OUTAGE_S": "60"}
    log = tmp_path / "run.log"
    process = _start(env, 30, log)
    _wait_for_creations(fake_replicate, process, 10, log)
    fake_replicate.down_until = time.monotonic() + 4  # every request answered 503 for 4 s
    assert process.wait(timeout=300) == 0, log.read_text()[-4000:]
    assert statuses(env).materialized == {f"img-{i:02d}" for i in range(30)}
    assert not paid_twice(fake_replicate)
    status = ledger(env).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)
    assert "(transient, strategy backoff)" in log.read_text()  # the outage was seen, and waited out


def test_an_outage_longer_than_the_longest_wait_fails_the_rest_with_the_reason(
    fake_replicate, cli_env, tmp_path: Path
) -> None:
    fake_replicate.latency_s = 0.3
    env = {**flaky_env(fake_replicate, cli_env, tmp_path, 30), "ASSET_PIPELINE_MAX_OUTAGE_S": "3"}
    log = tmp_path / "run.log"
    process = _start(env, 30, log)
    _wait_for_creations(fake_replicate, process, 10, log)
    # 500, not 503: the official client retries a GET answered 503 for ~50 s by itself.
    fake_replicate.down_status, fake_replicate.down_until = 500, time.monotonic() + 3600
    assert process.wait(timeout=300) != 0
    output = log.read_text()
    failed = statuses(env).failed
    assert failed, output[-4000:]
    reasons = [line for line in output.splitlines() if line.startswith("  img-") and ": " in line]
    failed_lines = [line for line in reasons if line.split(":")[0].strip() in failed]
    assert failed_lines and all("provider unavailable since " in line for line in failed_lines), "\n".join(reasons)
    assert all("no request sent" not in line and line.count(line.split(":")[0].strip()) == 1 for line in failed_lines)
    assert "provider_unavailable" in output  # the summary's failed-by-reason block
    assert not paid_twice(fake_replicate)

    # The provider is back: the next run re-attaches to what was in flight and pays nothing twice.
    fake_replicate.down_until = 0.0
    again = subprocess.run(materialize_command(30), cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert not paid_twice(fake_replicate)
    status = ledger(env).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)
