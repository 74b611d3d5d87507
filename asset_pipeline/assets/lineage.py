"""Data-version provenance for materializations we log ourselves, one partition at a time.

Dagster computes provenance tags (input data versions and event pointers) only for `Output`s. Our
range runs log one `AssetMaterialization(partition=...)` per finished image instead, so Dagster
would record no lineage and could never mark one image stale when its prompt changes. We write the
same tags Dagster writes, importing its tag names rather than copying the strings, so the UI's
stale-status resolver reads them exactly as it reads its own.
"""

from __future__ import annotations

import dagster as dg

from asset_pipeline.dagster_internals import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    AssetCheckEvaluationTargetMaterializationData,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

# A step can run after a prompt was edited but before anyone observed the catalog; we then log the
# observation ourselves so the image points at the exact spec version it was made from.
_OBSERVED_BY_TAG = "asset_pipeline/observed_by"


def provenance_tags(
    *, code_version: str, data_version: str, inputs: dict[dg.AssetKey, tuple[str, int]]
) -> dict[str, str]:
    """Tags that make a logged materialization carry lineage: its inputs' versions and events."""
    tags = {CODE_VERSION_TAG: code_version, DATA_VERSION_TAG: data_version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
    for key, (version, storage_id) in inputs.items():
        tags[get_input_data_version_tag(key)] = version
        tags[get_input_event_pointer_tag(key)] = str(storage_id)
    return tags


def latest_event(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition_key: str, *, observation: bool
) -> dg.EventLogRecord | None:
    """The newest observation (or materialization) of one partition of `key`."""
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key])
    fetch = instance.fetch_observations if observation else instance.fetch_materializations
    records = fetch(records_filter, limit=1).records
    return records[0] if records else None


def latest_events_by_partition(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition_keys: list[str], *, observation: bool
) -> dict[str, dg.EventLogRecord]:
    """The newest observation (or materialization) of each of `partition_keys`, in a few queries.

    Reads newest-first in pages and stops once every key is found, so a run over 490 partitions
    costs one or two queries instead of one per partition.
    """
    wanted = set(partition_keys)
    found: dict[str, dg.EventLogRecord] = {}
    fetch = instance.fetch_observations if observation else instance.fetch_materializations
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=partition_keys)
    cursor = None
    while wanted - found.keys():
        page = fetch(records_filter, limit=max(100, len(wanted)), cursor=cursor)
        for record in page.records:
            if record.partition_key in wanted:
                found.setdefault(record.partition_key, record)
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def event_data_version(record: dg.EventLogRecord | None) -> str | None:
    if record is None:
        return None
    event = record.asset_materialization or record.asset_observation
    return (event.tags or {}).get(DATA_VERSION_TAG) if event is not None else None


def observation_tags(data_version: str, *, observed_by: str) -> dict[str, str]:
    """Tags of an observation logged by a materializing step (see `_OBSERVED_BY_TAG`)."""
    return {DATA_VERSION_TAG: data_version, _OBSERVED_BY_TAG: observed_by}


def check_target(record: dg.EventLogRecord | None) -> AssetCheckEvaluationTargetMaterializationData | None:
    """Ties a check result to the materialization it checked, as Dagster does for `AssetCheckResult`."""
    if record is None:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.run_id, storage_id=record.storage_id, timestamp=record.timestamp
    )


def latest_materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dg.EventLogRecord]:
    """The newest materialization of every partition of `key`, read newest-first in pages."""
    latest: dict[str, dg.EventLogRecord] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000, cursor=cursor)
        for record in result.records:
            if record.partition_key is not None:
                latest.setdefault(record.partition_key, record)
        if not result.has_more:
            return latest
        cursor = result.cursor
