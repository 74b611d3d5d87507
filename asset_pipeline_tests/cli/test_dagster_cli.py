"""The real `dagster asset materialize` CLI on a project-local SQLite instance: one key and a range."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.lineage import latest_materializations


def image_events(home: str) -> dict[str, dict]:
    """Latest `images` materialization metadata per partition, read from the instance on disk."""
    with dg.DagsterInstance.from_config(home) as instance:
        latest = latest_materializations(instance, IMAGES)
        return {key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for key, r in latest.items()}


def test_materialize_one_partition(run_cli, cli_env) -> None:
    done = run_cli("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions",
                   "--select", "images", "--partition", "img-01")
    assert done.returncode == 0, done.stderr[-3000:]
    events = image_events(cli_env["DAGSTER_HOME"])
    assert list(events) == ["img-01"]
    assert Path(events["img-01"]["path"]).is_file()
    assert Path(cli_env["ASSET_PIPELINE_DATA_DIR"], "images", "img-01.png").is_file()


def test_materialize_a_partition_range_in_one_run_then_all_cache_hits(run_cli, cli_env) -> None:
    command = ("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions",
               "--select", "images", "--partition-range", "img-01...img-04")
    first = run_cli(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    events = image_events(cli_env["DAGSTER_HOME"])
    assert sorted(events) == ["img-01", "img-02", "img-03", "img-04"]
    assert not any(meta["cache_hit"] for meta in events.values())
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_run_records()) == 1  # one run, not one per image

    second = run_cli(*command)
    assert second.returncode == 0, second.stderr[-3000:]
    assert all(meta["cache_hit"] for meta in image_events(cli_env["DAGSTER_HOME"]).values())

    report = run_cli("asset-pipeline", "report", "--partition-range", "img-01...img-04")
    assert report.returncode == 0, report.stderr
    assert "4 of 4 image(s) materialized, 4 cache hit(s), total cost $0.0000." in report.stdout
    assert "img-04" in report.stdout and "96x64" in report.stdout


def test_an_unknown_partition_is_refused_by_dagster(run_cli) -> None:
    done = run_cli("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions",
                   "--select", "images", "--partition", "no-such-image")
    assert done.returncode != 0
    assert "no-such-image" in done.stdout + done.stderr


def test_dg_finds_the_code_location_from_pyproject(run_cli, cli_env) -> None:
    import json
    import sys

    env = {**cli_env, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    done = run_cli("dg", "list", "defs", "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    listing = json.loads(done.stdout[done.stdout.index("{"):])
    keys = {asset["asset_key"] for asset in listing["assets"]}
    assert {"images", "image_variants", "asset_manifest", "contact_sheet", "image_catalog"} <= keys
