"""Lineage: editing one prompt and observing the catalog makes exactly that `prompts` partition stale,
and once it is re-written with new text, exactly that image (catalog -> prompts -> images)."""

from __future__ import annotations

from pathlib import Path

from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from asset_pipeline.assets.keys import IMAGE_CATALOG, IMAGES, PROMPTS
from asset_pipeline_testing.helpers import materialize, pipeline_defs


def stale_images(defs, instance, key=IMAGES) -> dict[str, StaleStatus]:
    # Dagster's own test helper around the resolver the UI uses for its "stale" badge.
    resolver = get_stale_status_resolver(instance, list(defs.assets or []))
    return {partition: resolver.get_status(key, partition) for partition in [f"img-{i:02d}" for i in range(6)]}


def observe(defs, instance) -> None:
    result = defs.resolve_job_def("observe_image_catalog").execute_in_process(instance=instance)
    assert result.success


def test_editing_one_prompt_makes_only_that_image_stale(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    observe(defs, instance)
    assert materialize(defs, instance, first="img-00", last="img-05").success
    assert set(stale_images(defs, instance).values()) == {StaleStatus.FRESH}

    catalog_path.write_text(catalog_path.read_text().replace("a test icon number 3", "a brass key on velvet"))
    observe(defs, instance)
    statuses = stale_images(defs, instance, PROMPTS)
    assert statuses.pop("img-03") == StaleStatus.STALE
    assert set(statuses.values()) == {StaleStatus.FRESH}
    # Dagster does not propagate "stale" down the graph: the image turns stale once its prompt has new text.
    assert materialize(defs, instance, selection="prompts", partition="img-03").success
    statuses = stale_images(defs, instance)
    assert statuses.pop("img-03") == StaleStatus.STALE
    assert set(statuses.values()) == {StaleStatus.FRESH}

    result = materialize(defs, instance, partition="img-03")
    assert result.success
    assert set(stale_images(defs, instance).values()) == {StaleStatus.FRESH}


def test_images_made_before_any_observation_record_their_spec_version(
    catalog_path: Path, data_dir: Path, instance
) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    assert materialize(defs, instance, first="img-00", last="img-01").success
    observations = instance.fetch_observations(IMAGE_CATALOG, limit=10).records
    assert {record.partition_key for record in observations} == {"img-00", "img-01"}

    catalog_path.write_text(catalog_path.read_text().replace("a test icon number 0", "an edited prompt"))
    observe(defs, instance)
    statuses = stale_images(defs, instance, PROMPTS)
    assert statuses["img-00"] == StaleStatus.STALE and statuses["img-01"] == StaleStatus.FRESH
