"""`asset-pipeline retry-failed` refuses to submit while the circuit is open. (Its backfill run by the
real daemon is proven in asset_pipeline_tests/test_daemon_paths.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from asset_pipeline_testing.helpers import FailingGenerator, materialize, pipeline_defs


def test_retry_failed_submits_nothing_while_the_circuit_is_open(run_cli, cli_env, catalog_path: Path) -> None:
    from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
    from asset_pipeline.ledger.database import ledger_engine

    env = {**cli_env, "ASSET_PIPELINE_BACKEND": "replicate", "REPLICATE_API_TOKEN": "r8_not_used_here"}
    data_dir = Path(env["ASSET_PIPELINE_DATA_DIR"])
    defs = pipeline_defs(catalog_path, data_dir, backend="replicate")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        flaky = FailingGenerator(failing_ids=["img-03"])
        assert not materialize(defs, instance, first="img-03", last="img-03", resources={"image_generator": flaky}).success
    CircuitBreaker(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"), provider="replicate",
                   config=BreakerConfig(minimum_calls=1)).record(ok=False, trial=False)

    dry = json.loads(run_cli("asset-pipeline", "retry-failed", "--dry-run", "--json", env=env).stdout)
    assert dry["failed"] == ["img-03"] and 0 < dry["circuit_open_for_s"] <= 30  # a slow CLI start eats into it
    refused = run_cli("asset-pipeline", "retry-failed", env=env)
    assert refused.returncode == 1
    assert "replicate circuit breaker is open for another" in refused.stderr and "nothing was submitted" in refused.stderr
    assert "r8_not_used_here" not in refused.stdout + refused.stderr
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_backfills() == []


def test_retry_failed_writes_the_prompts_of_a_catalog_with_briefs_too(run_cli, cli_env, tmp_path: Path) -> None:
    """An image that failed for want of its prompt is retried with its prompt: the backfill selects
    `prompts` and `images` (the daemon running such a backfill: test_daemon_prompts.py)."""
    from asset_pipeline.assets.image_prompts import NO_PROMPT_YET
    from asset_pipeline.assets.keys import IMAGES, PROMPTS
    from asset_pipeline_testing.briefs import write_brief_catalog

    catalog = write_brief_catalog(tmp_path / "briefs.yaml")
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(catalog)}
    defs = pipeline_defs(catalog, Path(env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = materialize(defs, instance, first="brief-001", last="brief-001")  # images alone: no prompt yet
        assert not result.success
        assert NO_PROMPT_YET in next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    report = json.loads(run_cli("asset-pipeline", "retry-failed", "--json", env=env).stdout)
    assert report["failed"] == ["brief-001"] and report["assets"] == ["prompts", "images"]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [backfill] = instance.get_backfills()
        assert set(backfill.asset_selection) == {PROMPTS, IMAGES}
        assert backfill.backfill_id == report["backfill_id"]
