"""Which `images` partitions are materialized, failed or in progress, as the Dagster UI shows them.

Dagster exposes this per-asset partition status only through its internal status cache (the same
function the UI's GraphQL layer calls); wrapping it here keeps that one internal import in one
place for the CLI and, later, the failed-partition re-runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from asset_pipeline.dagster_internals import get_and_update_asset_status_cache_value


@dataclass(frozen=True)
class PartitionStatuses:
    materialized: frozenset[str]
    failed: frozenset[str]
    in_progress: frozenset[str]

    def status_of(self, partition_key: str) -> str:
        if partition_key in self.in_progress:
            return "in_progress"
        if partition_key in self.failed:
            return "failed"
        if partition_key in self.materialized:
            return "materialized"
        return "missing"


def partition_statuses(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition
) -> PartitionStatuses:
    value = get_and_update_asset_status_cache_value(instance, asset_key, partitions_def)
    if value is None:
        return PartitionStatuses(frozenset(), frozenset(), frozenset())
    return PartitionStatuses(
        materialized=frozenset(value.deserialize_materialized_partition_subsets(partitions_def).get_partition_keys()),
        failed=frozenset(value.deserialize_failed_partition_subsets(partitions_def).get_partition_keys()),
        in_progress=frozenset(value.deserialize_in_progress_partition_subsets(partitions_def).get_partition_keys()),
    )
