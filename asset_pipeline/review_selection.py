"""Which image partitions a rejection asks to re-render, and how Dagster hears of a verdict.

Shared by `asset-pipeline retry-failed --rejected`, `estimate --select rejected`, the
`rejected_images_sensor` and the review service. A partition is due for a re-render while its
current image (newest `images` materialization) has a rejection as its newest verdict; once the
new take is materialized it is unreviewed, so it is never requested twice.
"""

from __future__ import annotations

import dagster as dg
from sqlalchemy import Engine

from asset_pipeline.assets.keys import IMAGE_CATALOG, IMAGES
from asset_pipeline.assets.lineage import (
    check_target,
    event_data_version,
    latest_event,
    latest_materializations,
    observation_tags,
)
from asset_pipeline.assets.review_checks import approved_evaluation
from asset_pipeline.catalog import Catalog
from asset_pipeline.ledger.reviews import review_states


def current_images(instance: dg.DagsterInstance) -> dict[str, str]:
    """Partition -> sha256 of its current image (newest materialization)."""
    shas = {}
    for key, record in latest_materializations(instance, IMAGES).items():
        materialization = record.asset_materialization
        entry = materialization.metadata.get("sha256") if materialization else None
        if entry is not None and entry.value:
            shas[key] = str(entry.value)
    return shas


def rejected_partitions(instance: dg.DagsterInstance, catalog: Catalog, engine: Engine) -> list[str]:
    """Catalog ids (in catalog order) whose current image was rejected: a new take is due."""
    current = current_images(instance)
    states = review_states(engine, {key: current.get(key) for key in catalog.ids})
    return [key for key in catalog.ids if states[key][0] == "rejected"]


def report_review(instance: dg.DagsterInstance, catalog: Catalog, engine: Engine, partition_key: str,
                  *, source: str) -> bool:
    """Tell Dagster about a verdict on `partition_key` right away, outside any run.

    Logs the `approved` check result for the current image, and, when the verdict changed the
    partition's take, an `image_catalog` observation with the new spec hash (exactly what observing
    the catalog would record), so the UI shows the partition stale without waiting for a job.
    Returns whether the take changed.
    """
    spec = catalog.get(partition_key)
    observed = latest_event(instance, IMAGE_CATALOG, partition_key, observation=True)
    changed = event_data_version(observed) != spec.spec_hash
    if changed:
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=IMAGE_CATALOG, partition=partition_key,
            tags=observation_tags(spec.spec_hash, observed_by=source),
            metadata={"take": spec.take},
        ))
    materialized = latest_event(instance, IMAGES, partition_key, observation=False)
    materialization = materialized.asset_materialization if materialized else None
    sha_entry = materialization.metadata.get("sha256") if materialization else None
    if sha_entry is not None and sha_entry.value:
        sha = str(sha_entry.value)
        state, review = review_states(engine, {partition_key: sha})[partition_key]
        instance.report_runless_asset_event(
            approved_evaluation(partition_key, state, review, sha256=sha, target=check_target(materialized)))
    return changed
