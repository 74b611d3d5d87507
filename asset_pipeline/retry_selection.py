"""Which image partitions to re-run, and the work that re-runs them (their cost: `cost_estimate.py`).

Shared by `asset-pipeline retry-failed`, the `failed_images_sensor` and the images schedule. A
backfill (not a single run) is what Dagster offers for an arbitrary set of partitions: its daemon
launches one run per contiguous range, exactly like the UI's "backfill failed and missing".
Schedules cannot request backfills in Dagster 1.13 (the scheduler daemon only creates runs), so
the schedule requests those contiguous-range runs itself (`range_run_requests`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import dagster as dg

from asset_pipeline.assets import image_partitions
from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.lineage import latest_events_by_partition
from asset_pipeline.catalog import Catalog
from asset_pipeline.dagster_internals import (
    AssetGraphSubset,
    AssetKeyPartitionKey,
    PartitionBackfill,
    make_new_backfill_id,
)
from asset_pipeline.partition_status import partition_statuses
from asset_pipeline.prompting.value import written_value

RETRY_TAG = "asset_pipeline/retry"
PARTITION_COUNT_TAG = "asset_pipeline/partition_count"
ESTIMATED_COST_TAG = "asset_pipeline/estimated_cost_usd"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partitions_with_status(instance: dg.DagsterInstance, catalog: Catalog, wanted: set[str]) -> list[str]:
    """Catalog ids (in catalog order) whose `images` status is one of `wanted`: failed, missing, or
    fallback (materialized with a generic fallback image, so its `not_a_fallback` check failed)."""
    statuses = partition_statuses(instance, IMAGES, image_partitions(catalog))
    fallbacks: set[str] = set()
    if "fallback" in wanted and statuses.materialized:
        latest = latest_events_by_partition(instance, IMAGES, sorted(statuses.materialized), observation=False)
        fallbacks = {key for key, record in latest.items() if _is_fallback(record)}
    return [key for key in catalog.ids if statuses.status_of(key) in wanted or key in fallbacks]


def _is_fallback(record: dg.EventLogRecord) -> bool:
    materialization = record.asset_materialization
    entry = materialization.metadata.get("fallback") if materialization else None
    return bool(entry and entry.value)


def within_budget(costs: dict[str, float], budget_usd: float) -> list[str]:
    """Keys of `costs`, in order, taken while they still fit `budget_usd` (free ones always fit)."""
    chosen, total = [], 0.0
    for key, cost in costs.items():
        if total + cost > budget_usd + 1e-12:
            continue
        chosen.append(key)
        total += cost
    return chosen


def rerun_assets(catalog: Catalog | None) -> list[dg.AssetKey]:
    """What a re-run selects: `images`, with `prompts` before it when the catalog has briefs to write.

    An image whose prompt failed is re-run together with its prompt (a prompt already written is a
    free cache hit), so a retry never renders an older stored prompt instead of writing the new one.
    """
    if catalog is not None and any(written_value(spec) is None for spec in catalog.images):
        return [PROMPTS, IMAGES]
    return [IMAGES]


def images_subset(keys: Iterable[str], asset_graph, *,  # type: ignore[no-untyped-def]
                  assets: Iterable[dg.AssetKey] = (IMAGES,)) -> AssetGraphSubset:
    return AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(asset, key) for asset in assets for key in keys}, asset_graph)


def submit_backfill(instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str], *, reason: str,
                    assets: list[dg.AssetKey] | None = None) -> str:
    """Submit a backfill of `images` (and `assets`, when given) for exactly `keys`; the daemon launches its runs."""
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=keys,
        asset_selection=assets or [IMAGES],
        backfill_timestamp=time.time(),
        tags={RETRY_TAG: reason},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"retry {len(keys)} image(s)",
        description=reason,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def contiguous_ranges(keys: Iterable[str], order: list[str], *, max_size: int | None = None) -> list[list[str]]:
    """`keys` split into runs of neighbours in `order` (the partitions definition's order), each at
    most `max_size` long: what a backfill with `BackfillPolicy.multi_run(max_size)` launches."""
    position = {key: index for index, key in enumerate(order)}
    ranges: list[list[str]] = []
    for key in sorted(set(keys), key=position.__getitem__):
        if ranges and position[ranges[-1][-1]] == position[key] - 1 and (max_size is None or len(ranges[-1]) < max_size):
            ranges[-1].append(key)
        else:
            ranges.append([key])
    return ranges


def describe_keys(keys: list[str], *, limit: int = 8) -> str:
    """`a, b, c` or `a, b, ... (+N more)`, for tick messages and logs."""
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... (+{len(keys) - limit} more)"


def range_run_requests(costs: dict[str, float], order: list[str], *, reason: str,
                       partitions_per_run: int | None = None,
                       assets: list[dg.AssetKey] | None = None) -> list[dg.RunRequest]:
    """One partition-range run of `images` per contiguous range of `costs`' keys, split into runs of
    at most `partitions_per_run` partitions as backfills are (ASSET_PIPELINE_PARTITIONS_PER_RUN), each
    tagged with its range, partition count and estimated cost (what the UI's tick and preview show)."""
    requests = []
    for keys in contiguous_ranges(costs, order, max_size=partitions_per_run):
        first, last = keys[0], keys[-1]
        estimate = round(sum(costs[key] for key in keys), 6)
        requests.append(dg.RunRequest(
            run_key=f"{first}...{last}",
            asset_selection=assets or [IMAGES],
            tags={RANGE_START_TAG: first, RANGE_END_TAG: last, RETRY_TAG: reason,
                  PARTITION_COUNT_TAG: str(len(keys)), ESTIMATED_COST_TAG: f"{estimate:.4f}"},
        ))
    return requests
