"""The real `dagster asset materialize` CLI selecting `prompts,images` over a range of a brief
catalog: one run writes the prompts and then renders the images; a second run is all cache hits."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline_testing.briefs import write_brief_catalog


def test_one_cli_run_materializes_prompts_then_images(run_cli, cli_env, tmp_path: Path) -> None:
    env = {**cli_env, "ASSET_PIPELINE_CATALOG": str(write_brief_catalog(tmp_path / "briefs.yaml"))}
    command = ("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "prompts,images",
               "--partition-range", "brief-001...written-000")
    first = run_cli(*command, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_run_records()) == 1
        prompts, images = latest_materializations(instance, PROMPTS), latest_materializations(instance, IMAGES)
        expected = ["brief-001", "brief-002", "brief-003", "written-000"]
        assert sorted(prompts) == sorted(images) == expected
        assert all(prompts[k].storage_id < images[k].storage_id for k in expected)  # prompt first, then image
    second = run_cli(*command, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        images = latest_materializations(instance, IMAGES)
        assert all(r.asset_materialization.metadata["cache_hit"].value for r in images.values())
