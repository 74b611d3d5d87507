"""The money invariants against every hostile provider mode, through the real CLI.

For each hostile money mode of the fake Replicate (issue 11), `dagster asset materialize` runs a
3-image partition range with the replicate backend and small caps; afterwards
`money_invariants.money_violations` must find nothing: the ledger books exactly the fake's bill,
spend stays under each cap, no input was created twice, no reservation is left open, and no NaN
reached the ledger or the store's `requests/<hash>.json`. SQLite for every mode, PostgreSQL for
two. One fake server serves the whole module.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import REAL, FakeReplicateState
from asset_pipeline_testing.helpers import write_catalog
from asset_pipeline_testing.money_invariants import money_violations
from asset_pipeline_testing.postgres import fresh_database
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

PROJECT = Path(__file__).parents[1]
SDXL = "stability-ai/sdxl"
FLUX = "black-forest-labs/flux-schnell"
CAPS = {SDXL: BudgetCaps(1.0, 1.0, 1.0), FLUX: BudgetCaps(0.05, 0.05, 0.05)}  # 3 x 300 s x $0.000975 fits

# mode id -> (model, settings of the fake, whether the images are stored in the end)
MODES: dict[str, tuple[str, dict, bool]] = {
    "predict_time_negative": (SDXL, {"reported_predict_time": -1000}, True),
    "predict_time_huge": (SDXL, {"reported_predict_time": 1e7}, True),
    "predict_time_nan": (SDXL, {"reported_predict_time": math.nan}, True),
    "predict_time_string": (SDXL, {"reported_predict_time": "fast"}, True),
    "create_reset": (FLUX, {"create_resets": 2}, True),
    "create_html_201": (FLUX, {"create_garbled": [(201, "<html>Created</html>"), (502, "<html>Bad Gateway</html>")]}, True),
    "output_empty": (FLUX, {"succeeded_output": []}, False),
    "output_local_file": (FLUX, {"succeeded_output": ["file:///etc/passwd"]}, False),
    "output_expired": (FLUX, {"succeeded_output": ["{base}/files/expired.png"]}, False),
    "output_redirect_loop": (FLUX, {"succeeded_output": ["{base}/money/redirect-loop"]}, False),
    "output_bad_data_uri": (FLUX, {"succeeded_output": ["data:image/png;base64,abc"]}, False),
}
POSTGRES_MODES = ("predict_time_nan", "create_reset")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeReplicateState]:
    with running_fake_replicate(FakeReplicateState(token=TOKEN, latency_s=0.05)) as state:
        yield state


@pytest.fixture
def hostile(fake: FakeReplicateState) -> Iterator[FakeReplicateState]:
    """The shared fake, emptied, its hostile modes off again afterwards."""
    with fake.lock:
        fake.predictions.clear()
        fake.files.clear()
        fake.creations.clear()
        fake.bill_micros = 0
    yield fake
    fake.reported_predict_time, fake.succeeded_output = REAL, REAL
    fake.create_resets, fake.create_garbled = 0, []


def run_range(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "asset_pipeline.definitions",
               "--select", "images", "--partition-range", "img-00...img-02"]
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240, check=False)


def check_mode(mode: str, fake: FakeReplicateState, cli_env: dict[str, str], tmp_path: Path,
               database_url: str | None = None) -> None:
    model, settings, stored = MODES[mode]
    for name, value in settings.items():
        setattr(fake, name, list(value) if isinstance(value, list) else value)
    catalog = write_catalog(tmp_path / "money.yaml", [
        {"id": f"img-{i:02d}", "category": "hero", "prompt": f"a quiet harbour {i}", "width": 512, "height": 512,
         "seed": i} for i in range(3)
    ])
    caps = CAPS[model]
    data_dir = Path(cli_env["ASSET_PIPELINE_DATA_DIR"])
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "replicate",
           "ASSET_PIPELINE_MODEL": model, "REPLICATE_API_TOKEN": TOKEN, "REPLICATE_BASE_URL": fake.base_url,
           "ASSET_PIPELINE_POLL_INTERVAL_S": "0.02", "ASSET_PIPELINE_BACKOFF_BASE_S": "0.01",
           "ASSET_PIPELINE_BUDGET_TOTAL_USD": str(caps.total_usd), "ASSET_PIPELINE_BUDGET_DAILY_USD": str(caps.daily_usd),
           "ASSET_PIPELINE_BUDGET_PER_RUN_USD": str(caps.per_run_usd)}
    if database_url is not None:
        env["ASSET_PIPELINE_DATABASE_URL"] = database_url
    result = run_range(env)
    log = (result.stdout + result.stderr)[-3000:]
    assert (result.returncode == 0) == stored, log
    assert "unexpected" not in log, log
    engine = ledger_engine(database_url or f"sqlite:///{data_dir / 'ledger.db'}")
    try:
        problems = money_violations(engine, caps=caps, provider_bill_usd=fake.bill_usd,
                                    creations_per_input=fake.creations, store_dir=data_dir)
    finally:
        engine.dispose()
    assert problems == [], log
    assert fake.created_total == 3  # one prediction per image, however the provider misbehaved
    assert fake.bill_usd > 0  # every mode is billed by the provider; the ledger had to book it
    if stored:
        assert len(list((data_dir / "requests").glob("*.json"))) == 3


@pytest.mark.parametrize("mode", sorted(MODES))
def test_money_invariants_hold_against_a_hostile_provider(mode: str, hostile, cli_env, tmp_path: Path) -> None:
    check_mode(mode, hostile, cli_env, tmp_path)


@pytest.mark.parametrize("mode", POSTGRES_MODES)
def test_money_invariants_hold_on_a_postgres_ledger(mode: str, hostile, cli_env, tmp_path: Path) -> None:
    with fresh_database() as url:
        check_mode(mode, hostile, cli_env, tmp_path, database_url=url)


def test_the_checker_sees_a_ledger_that_disagrees_with_the_bill(hostile, cli_env, tmp_path: Path) -> None:
    """The checker can fail: a bill the ledger never booked is reported."""
    check_mode("predict_time_negative", hostile, cli_env, tmp_path)
    engine = ledger_engine(f"sqlite:///{Path(cli_env['ASSET_PIPELINE_DATA_DIR']) / 'ledger.db'}")
    try:
        problems = money_violations(engine, caps=CAPS[SDXL], provider_bill_usd=hostile.bill_usd + 0.01)
    finally:
        engine.dispose()
    assert len(problems) == 1 and "the provider billed" in problems[0]
