"""The real CLI (`dagster asset materialize --partition-range`) against the fake provider's hostile
deliveries: each bad partition fails with a message naming its cause while the good one is stored,
no input is paid for twice, the ledger accounts for every cent the fake billed, the run's peak
memory stays far below a pixel bomb's decoded size, and a run terminated with SIGTERM during a
dripping download stops within seconds, charges nothing, and is re-attached by the next run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.fake_replicate.server import pixel_bomb
from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_tests.generation.test_replicate_crash_resume import run_log, start_cli_run

CAPS = BudgetCaps(20, 10, 20)
MODES = {  # partition -> (prompt marker, what its failure must say)
    "img-00": ("", None),
    "img-01": ("[[pixelbomb]]", "over the 4.2 MP allowed for it; refused before decoding"),
    "img-02": ("[[drip]]", "the download did not finish within 3 s (ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S)"),
    "img-03": ("[[foreignhost]]", "not an allowed delivery host (ASSET_PIPELINE_DELIVERY_HOSTS"),
    "img-04": ("[[redirectloop]]", "redirected more than 5 times"),
    "img-05": ("[[tiny]]", "returned 1x1, expected about 1024x1024"),
    "img-06": ("[[corrupt]]", "output is not a decodable image"),
}
DECODED_BOMB_BYTES = 13000 * 13000 * 4
PEAK_RSS_BOUND = 450 * 1024 * 1024  # this run peaks near 160 MB; one decoded bomb adds 676 MB


def ledger(env: dict[str, str]) -> BudgetLedger:
    return BudgetLedger(ledger_engine(f"sqlite:///{Path(env['ASSET_PIPELINE_DATA_DIR']) / 'ledger.db'}"))


def hostile_env(cli_env: dict[str, str], tmp_path: Path, modes: dict[str, tuple[str, str | None]]) -> dict[str, str]:
    catalog = write_catalog(tmp_path / "hostile.yaml", [
        {"id": key, "category": "hero", "prompt": f"a lighthouse {marker}".strip(), "width": 1024, "height": 1024,
         "seed": index} for index, (key, (marker, _)) in enumerate(modes.items())
    ])
    return {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "replicate",
            "REPLICATE_API_TOKEN": os.environ["REPLICATE_API_TOKEN"], "REPLICATE_BASE_URL": os.environ["REPLICATE_BASE_URL"],
            "ASSET_PIPELINE_POLL_INTERVAL_S": "0.05", "ASSET_PIPELINE_HUB_ENABLED": "false"}


def wait_with_peak_rss(pid: int, timeout_s: float) -> tuple[int, int]:
    """Exit code and peak RSS in bytes of child `pid`: the high-water mark of its own memory
    (`VmHWM`, per address space, so reset at exec), read until it exits. Not `ru_maxrss`: on Linux
    that keeps the forked copy of this (large) test process from before the exec."""
    deadline, peak = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        peak = max(peak, _high_water_mark(pid))
        waited, status, _usage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            return os.waitstatus_to_exitcode(status), peak
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the run did not end within {timeout_s} s")


def _high_water_mark(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass  # exiting: the last reading stands
    return 0


def test_each_hostile_delivery_fails_its_partition_clearly_and_the_money_adds_up(
    fake_replicate, cli_env: dict[str, str], tmp_path: Path
) -> None:
    pixel_bomb()  # built before the run: building it blocks the fake's event loop for seconds
    fake_replicate.drip_interval_s = 0.5
    env = {**hostile_env(cli_env, tmp_path, MODES), "ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S": "3"}
    process = start_cli_run(env, "img-00...img-06")
    code, peak_rss = wait_with_peak_rss(process.pid, 240)
    log = (Path(env["DAGSTER_HOME"]) / "run.log").read_text()
    assert code != 0, log[-3000:]
    for key, (marker, cause) in MODES.items():
        if cause is not None:
            assert f"partition {key} failed: " in log and cause in log, f"{key} {marker}: {log[-3000:]}"
    assert "partition img-00 failed" not in log
    assert (Path(env["ASSET_PIPELINE_DATA_DIR"]) / "images" / "img-00.png").exists()
    assert fake_replicate.created_total == len(MODES) and max(fake_replicate.creations.values()) == 1
    status = ledger(env).status(CAPS)
    # Every billed cent is charged, or still reserved for the prediction the next run re-attaches to.
    assert status.spent_total_usd + status.reserved_usd == pytest.approx(fake_replicate.bill_usd) == 0.003 * len(MODES)
    assert peak_rss < PEAK_RSS_BOUND, f"peak RSS {peak_rss / 1e6:.0f} MB (a decoded bomb is {DECODED_BOMB_BYTES / 1e6:.0f} MB)"
    assert os.environ["REPLICATE_API_TOKEN"] not in log


def test_sigterm_during_a_dripping_download_stops_at_once_and_the_next_run_re_attaches(
    fake_replicate, cli_env: dict[str, str], tmp_path: Path, instance
) -> None:
    fake_replicate.drip_interval_s = 2.0  # 16 bytes every 2 s: hours for one image
    env = hostile_env(cli_env, tmp_path, {"img-00": ("[[drip]]", None)})
    process = start_cli_run(env, "img-00...img-00")
    assert fake_replicate.drip_started.wait(120), run_log(env)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) != 0, run_log(env)
    assert time.monotonic() - sent < 10, run_log(env)
    status = ledger(env).status(CAPS)
    assert status.spent_total_usd == 0 and status.open_reservations == 1  # nothing charged after termination
    [prediction_id] = fake_replicate.predictions
    assert prediction_id in {row["prediction_id"] for row in PredictionJournal(ledger(env).engine).history()}

    fake_replicate.drip_enabled = False
    defs = pipeline_defs(Path(env["ASSET_PIPELINE_CATALOG"]), Path(env["ASSET_PIPELINE_DATA_DIR"]), backend="replicate")
    assert materialize(defs, instance, partition="img-00").success
    assert fake_replicate.created_total == 1  # re-attached, not paid again
    status = ledger(env).status(CAPS)
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd) == 0.003
