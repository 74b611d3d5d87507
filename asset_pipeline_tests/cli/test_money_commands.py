"""`asset-pipeline budget | ledger | estimate` after a real (fake-server) Replicate run."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog


@pytest.fixture
def paid_env(fake_replicate, cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    import os

    catalog = write_catalog(tmp_path / "paid.yaml", [
        {"id": f"img-{i:02d}", "category": "icon", "prompt": f"icon {i}", "width": 512, "height": 512, "seed": i}
        for i in range(5)
    ])
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog), "ASSET_PIPELINE_BACKEND": "replicate",
           "REPLICATE_BASE_URL": os.environ["REPLICATE_BASE_URL"], "ASSET_PIPELINE_BUDGET_DAILY_USD": "0.008"}
    defs = pipeline_defs(catalog, Path(env["ASSET_PIPELINE_DATA_DIR"]), backend="replicate", budget_daily_usd=0.008)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = materialize(defs, instance, first="img-00", last="img-04", resources=None)
        env["RUN_ID"] = result.run_id
    return env


def test_budget_ledger_and_estimate(paid_env: dict[str, str], run_cli) -> None:
    budget = json.loads(run_cli("asset-pipeline", "budget", "--json", env=paid_env).stdout)
    assert budget["spent_total_usd"] == pytest.approx(0.006)  # two $0.003 images fit under $0.008 a day
    assert budget["open_reservations"] == 0
    assert budget["remaining_today_usd"] == pytest.approx(0.002)
    assert budget["caps"]["daily_usd"] == 0.008

    entries = json.loads(run_cli("asset-pipeline", "ledger", "--json", "--run", paid_env["RUN_ID"], env=paid_env).stdout)
    assert [e["kind"] for e in entries].count("charge") == 2
    assert all(e["run_id"] == paid_env["RUN_ID"] for e in entries)
    assert "2 charge" not in run_cli("asset-pipeline", "ledger", env=paid_env).stdout  # text mode works
    assert json.loads(run_cli("asset-pipeline", "ledger", "--json", "--run", "nope", env=paid_env).stdout) == []

    failed = json.loads(run_cli("asset-pipeline", "estimate", "--json", "--select", "failed", env=paid_env).stdout)
    assert (failed["partitions"], failed["to_generate"]) == (3, 3)
    assert failed["estimated_cost_usd"] == pytest.approx(0.009) and failed["fits"] is False
    everything = json.loads(run_cli("asset-pipeline", "estimate", "--json", "--select", "all", env=paid_env).stdout)
    assert (everything["cache_hits"], everything["to_generate"]) == (2, 3)
    text = run_cli("asset-pipeline", "estimate", "--select", "failed", env=paid_env).stdout
    assert "does NOT fit: only $0.0020 remains" in text
