"""The `images` asset on a real Dagster instance: one partition, ranges, failures, caching, checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from asset_pipeline.assets.image_checks import NOT_BLANK, NOT_FALLBACK, VALID_PNG
from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.review_checks import APPROVED
from asset_pipeline_testing.helpers import (
    FailingGenerator,
    image_statuses,
    materializations,
    materialize,
    pipeline_defs,
)

DESIGN_METADATA = {
    "path", "sha256", "width", "height", "backend", "model", "seed", "request_hash",
    "cost_usd", "cache_hit", "attempts", "duration_s",
}


def test_one_partition_materializes_with_the_design_metadata(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    result = materialize(defs, instance, partition="img-02")
    assert result.success
    [(key, metadata)] = materializations(result).items()
    assert key == "img-02"
    assert DESIGN_METADATA <= set(metadata)
    stored = Path(metadata["path"])
    assert stored == data_dir.resolve() / "images" / "img-02.png"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == metadata["sha256"]
    assert (metadata["width"], metadata["height"], metadata["backend"]) == (96, 64, "placeholder")
    assert (metadata["cost_usd"], metadata["cache_hit"], metadata["attempts"]) == (0.0, False, 1)
    assert metadata["preview"].startswith("![img-02](data:image/jpeg;base64,")
    assert image_statuses(defs, instance).materialized == {"img-02"}


def test_range_logs_one_materialization_per_partition_and_passes_checks(
    catalog_path: Path, data_dir: Path, instance
) -> None:
    defs = pipeline_defs(catalog_path, data_dir, max_concurrency=3)
    result = materialize(defs, instance, first="img-00", last="img-05")
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key == IMAGES]
    assert sorted(e.materialization.partition for e in events) == [f"img-{i:02d}" for i in range(6)]
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    reviews = [e for e in evaluations if e.check_name == APPROVED]  # review loop: new images are unreviewed (WARN)
    assert len(reviews) == 6 and not any(e.passed for e in reviews)
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in reviews)
    evaluations = [e for e in evaluations if e.check_name != APPROVED]
    assert len(evaluations) == 18 and all(e.passed for e in evaluations)
    assert {e.check_name for e in evaluations} == {VALID_PNG, NOT_BLANK, NOT_FALLBACK}
    assert {e.partition for e in evaluations} == {f"img-{i:02d}" for i in range(6)}
    assert all(e.target_materialization_data is not None for e in evaluations)


def test_failed_partitions_fail_and_finished_ones_stay_materialized(
    catalog_path: Path, data_dir: Path, instance
) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    flaky = FailingGenerator(failing_ids=["img-01", "img-04"])
    result = materialize(defs, instance, first="img-00", last="img-05", resources={"image_generator": flaky})
    assert not result.success
    failure = result.failure_data_for_node("images")
    assert failure is not None
    assert "2 of 6 partition(s) failed" in failure.error.message
    assert "  img-01: injected provider failure\n" in failure.error.message  # the key once, not `key: key:`

    statuses = image_statuses(defs, instance)
    assert statuses.materialized == {"img-00", "img-02", "img-03", "img-05"}
    assert statuses.failed == {"img-01", "img-04"}

    # Re-running the range (what a step retry or "re-execute" does) skips what is stored.
    healed = materialize(defs, instance, first="img-00", last="img-05")
    assert healed.success
    cache_hits = {key: meta["cache_hit"] for key, meta in materializations(healed).items()}
    assert cache_hits == {"img-00": True, "img-01": False, "img-02": True, "img-03": True, "img-04": False, "img-05": True}
    assert all(meta["cost_usd"] == 0.0 for meta in materializations(healed).values())
    assert image_statuses(defs, instance).failed == set()


def test_rerun_is_a_cache_hit_with_identical_bytes(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    first = materializations(materialize(defs, instance, partition="img-03"))["img-03"]
    again = materializations(materialize(defs, instance, partition="img-03"))["img-03"]
    assert (again["cache_hit"], again["attempts"], again["cost_usd"]) == (True, 0, 0.0)
    assert again["sha256"] == first["sha256"] and again["request_hash"] == first["request_hash"]


def test_a_partition_missing_from_the_catalog_fails_with_its_name(
    catalog_path: Path, data_dir: Path, instance, tmp_path: Path
) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    catalog_path.write_text(catalog_path.read_text().replace("img-05", "img-55"))
    result = materialize(defs, instance, partition="img-05")
    assert not result.success
    assert "img-05: no entry with id 'img-05'" in result.failure_data_for_node("images").error.message


def test_partition_keys_are_the_catalog_ids(catalog_path: Path, data_dir: Path) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    partitions_def = defs.get_assets_def(IMAGES).partitions_def
    assert isinstance(partitions_def, dg.StaticPartitionsDefinition)
    assert partitions_def.get_partition_keys() == [f"img-{i:02d}" for i in range(6)]


def test_entries_asking_for_the_same_picture_are_generated_once(tmp_path: Path, data_dir: Path, instance) -> None:
    from asset_pipeline_testing.helpers import CountingGenerator, write_catalog

    twin = {"category": "icon", "prompt": "the same key", "width": 64, "height": 64, "seed": 5}
    entries = [{"id": f"twin-{n}", **twin} for n in range(4)]
    defs = pipeline_defs(write_catalog(tmp_path / "twins.yaml", entries), data_dir, max_concurrency=4)
    counting = CountingGenerator(rendered_log=str(tmp_path / "rendered.txt"))
    result = materialize(defs, instance, first="twin-0", last="twin-3", resources={"image_generator": counting})
    assert result.success
    assert len(counting.rendered()) == 1
    hits = sorted(meta["cache_hit"] for meta in materializations(result).values())
    assert hits == [False, True, True, True]
    assert len({meta["sha256"] for meta in materializations(result).values()}) == 1
