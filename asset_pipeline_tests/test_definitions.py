"""`asset_pipeline.definitions`: loads the bundled 490-partition catalog; a bad catalog stops loading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from asset_pipeline.assets.keys import ASSET_MANIFEST, CONTACT_SHEET, IMAGE_CATALOG, IMAGE_VARIANTS, IMAGES, PROMPTS
from asset_pipeline.catalog import load_catalog
from asset_pipeline_testing.helpers import write_catalog

PROJECT = Path(__file__).parents[1]


def test_definitions_load_with_the_bundled_catalog() -> None:
    from asset_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert {IMAGES, IMAGE_VARIANTS, ASSET_MANIFEST, CONTACT_SHEET, IMAGE_CATALOG} <= set(graph.get_all_asset_keys())
    partitions_def = defs.get_assets_def(IMAGES).partitions_def
    assert partitions_def.get_partition_keys() == load_catalog().ids
    assert len(load_catalog().ids) >= 480
    assert graph.get(IMAGES).parent_keys == {PROMPTS}
    assert graph.get(PROMPTS).parent_keys == {IMAGE_CATALOG}
    assert {check.name for check in graph.get(IMAGES).check_keys} == {
        "valid_png_of_requested_size", "not_blank", "not_a_fallback", "approved"
    }


def test_a_bad_catalog_stops_definitions_loading_with_every_problem(tmp_path: Path) -> None:
    bad = write_catalog(
        tmp_path / "bad.yaml",
        [{"id": "../etc", "category": "icon", "prompt": "p"}, {"id": "ok", "category": "icon", "prompt": "", "width": 30}],
    )
    env = {**os.environ, "ASSET_PIPELINE_CATALOG": str(bad), "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((PROJECT / "dagster.sqlite.yaml").read_text())
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "asset_pipeline.definitions"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "invalid image catalog (3 problems)" in output
    assert f"{bad}: entry '../etc' (#0): field 'id': must be a slug" in output
    assert f"{bad}: entry 'ok' (#1): field 'prompt': must not be empty" in output
    assert f"{bad}: entry 'ok' (#1): field 'width': " in output


def test_images_has_a_crash_retry_policy_and_claims_the_provider_pool() -> None:
    import dagster as dg

    from asset_pipeline.definitions import defs

    images = defs.get_assets_def(IMAGES)
    policy = images.op.retry_policy
    assert policy is not None and policy.max_retries == 2 and policy.backoff == dg.Backoff.EXPONENTIAL
    assert images.op.pool == "image_provider"
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 2}}}) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
