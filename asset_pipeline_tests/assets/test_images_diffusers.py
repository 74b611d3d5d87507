"""The `images` asset on the diffusers backend: a range run through Dagster, termination, bad config."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.imaging.inspect import inspect_image
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import history_rows, ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.ledger.schema import budget_entries
from asset_pipeline_testing.helpers import materializations, materialize, pipeline_defs, write_catalog
from asset_pipeline_tests.generation.test_replicate_crash_resume import run_log, start_cli_run

ENTRIES = [
    {"id": f"img-{i:02d}", "category": "icon", "prompt": f"a brass key number {i}", "width": 64 + 32 * i,
     "height": 64, "steps": 6, "seed": i}
    for i in range(3)
]


def test_a_range_run_renders_pngs_of_the_requested_sizes(tmp_path: Path, data_dir: Path, instance, tiny_sdxl) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", ENTRIES)
    defs = pipeline_defs(catalog, data_dir, backend="diffusers", diffusers_model=str(tiny_sdxl.base),
                         diffusers_refiner=str(tiny_sdxl.refiner), gpu_hour_usd=1.0)
    result = materialize(defs, instance, first="img-00", last="img-02")
    assert result.success
    made = materializations(result)
    assert sorted(made) == ["img-00", "img-01", "img-02"]
    for entry in ENTRIES:
        meta = made[entry["id"]]
        facts = inspect_image(Path(meta["path"]).read_bytes())
        assert (facts.format, facts.width, facts.height) == ("PNG", entry["width"], entry["height"])
        assert (meta["backend"], meta["model"]) == ("diffusers", "sdxl:base+refiner:refiner@0.8")
        assert 0 < meta["cost_usd"] < 0.01 and meta["cache_hit"] is False
    again = materialize(defs, instance, first="img-00", last="img-02")
    assert all(meta["cache_hit"] for meta in materializations(again).values())


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("stabilityai/stable-diffusion-xl-base-1.0", "looks like a Hugging Face hub id; this backend never downloads"),
        ("/nonexistent/sdxl", "directory '/nonexistent/sdxl' does not exist"),
    ],
)
def test_a_hub_id_or_missing_directory_fails_the_run_with_a_clear_error(
    tmp_path: Path, data_dir: Path, instance, model: str, message: str
) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", ENTRIES)
    defs = pipeline_defs(catalog, data_dir, backend="diffusers", diffusers_model=model)
    result = materialize(defs, instance, partition="img-00")
    assert not result.success
    errors = [str(event.event_specific_data.error) for event in result.all_events
              if event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    assert len(errors) == 1 and "ASSET_PIPELINE_DIFFUSERS_MODEL: " in errors[0] and message in errors[0]
    assert not list(data_dir.rglob("*.png"))


def test_terminating_a_cli_run_stops_denoising_and_releases_the_reservation(cli_env, tmp_path: Path, tiny_sdxl) -> None:
    catalog = write_catalog(tmp_path / "slow.yaml", [
        {"id": "slow-00", "category": "hero", "prompt": "a lighthouse", "width": 256, "height": 256, "steps": 150},
    ])
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "diffusers",
           "ASSET_PIPELINE_DIFFUSERS_MODEL": str(tiny_sdxl.base), "ASSET_PIPELINE_GPU_HOUR_USD": "2.0"}
    data_dir = Path(env["ASSET_PIPELINE_DATA_DIR"])
    process = start_cli_run(env, "slow-00...slow-00")
    deadline = time.monotonic() + 120
    while not _reservations(data_dir):
        assert process.poll() is None, run_log(env)
        assert time.monotonic() < deadline, "the run never reserved its GPU time"
        time.sleep(0.2)
    time.sleep(2.0)  # well inside the 150 steps
    process.send_signal(signal.SIGINT)  # what Dagster's terminate does to an in-process run
    assert process.wait(timeout=90) != 0, run_log(env)
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    rows = history_rows(engine, budget_entries)
    assert [row["kind"] for row in rows] == ["reservation", "release"]
    assert rows[1]["reason"].startswith("released: run terminated at base step ")
    assert rows[1]["reason"].endswith("; the image was not decoded")
    assert BudgetLedger(engine).status(BudgetCaps(20, 10, 20)).open_reservations == 0
    assert not list(data_dir.rglob("*.png"))


def _reservations(data_dir: Path) -> list:
    if not (data_dir / "ledger.db").exists():
        return []
    try:
        return history_rows(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), budget_entries)
    except Exception:  # noqa: BLE001 - the tables may not exist yet
        return []
