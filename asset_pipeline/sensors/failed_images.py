"""`failed_images_sensor` (off by default): re-run failed images while the provider and budget allow.

The sensor targets `images` and `prompts` (`asset_selection`; prompts are re-run, free when
already written, for a catalog with briefs), which is what lets the daemon accept its
`RunRequest.for_asset_graph_subset`: each tick that finds failures requests one backfill of exactly
the failed (and fallback) partitions, and the daemon launches one run per contiguous range.

It never loops: the cursor keeps every partition it has already requested until that partition is
materialized for real. A partition that fails again after its re-run is left for a person
(`asset-pipeline retry-failed` or the UI); only partitions that failed since are requested.
"""

from __future__ import annotations

import json

import dagster as dg

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.retry_selection import (
    RETRY_TAG,
    describe_keys,
    images_subset,
    partitions_with_status,
    rerun_assets,
)

SENSOR_TAG_VALUE = "failed_images_sensor"


def already_requested(cursor: str | None) -> set[str]:
    """The partitions an earlier tick requested that have not been materialized since."""
    return set(json.loads(cursor).get("requested", [])) if cursor else set()


def next_cursor(requested: set[str], *, fresh: list[str], failed: list[str], in_progress: set[str]) -> str:
    """Keep a requested partition while it is still failed or being re-run; forget it once it is
    materialized, so a later, new failure of the same image is re-run again."""
    keep = (requested & (set(failed) | in_progress)) | set(fresh)
    return json.dumps({"requested": sorted(keep)})


@dg.sensor(
    name="failed_images_sensor",
    minimum_interval_seconds=300,
    asset_selection=[PROMPTS, IMAGES],  # prompts too, for the briefs of a catalog that has them
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Backfills failed `images` partitions (each at most once) when the provider circuit is "
    "not open and budget remains under the caps in force.",
)
def failed_images_sensor(
    context: dg.SensorEvaluationContext, image_generator: ImageGenerator, catalog_file: CatalogFile,
    ledger: LedgerResource,
) -> dg.SensorResult | dg.SkipReason:
    catalog = catalog_file.load()
    failed = partitions_with_status(context.instance, catalog, {"failed", "fallback"})
    requested = already_requested(context.cursor)
    in_progress = set(partitions_with_status(context.instance, catalog, {"in_progress"})) if requested else set()
    if not failed:
        return dg.SensorResult(skip_reason=dg.SkipReason("no failed image partitions"),
                               cursor=next_cursor(requested, fresh=[], failed=[], in_progress=in_progress))
    fresh = [key for key in failed if key not in requested]
    if not fresh:
        return dg.SkipReason(
            f"{len(failed)} failed partition(s) ({describe_keys(failed)}) were already re-run once by this sensor; "
            "re-run them with `asset-pipeline retry-failed` or from the UI"
        )
    if image_generator.is_paid:
        # Half-open is fine: the cool-down is over and the backfill's first request is the trial
        # that closes the circuit (nothing else would ever close it).
        if ledger.circuit(provider=image_generator.provider).is_open:
            return dg.SkipReason("provider circuit is open; waiting for its cool-down to end")
        remaining = ledger.remaining_budget()
        if remaining.today_usd <= 0:
            return dg.SkipReason(f"no budget remains today (caps {remaining.source.describe()})")
    context.log.info(f"requesting a backfill of {len(fresh)} failed image partition(s): {describe_keys(fresh)}")
    subset = images_subset(fresh, context.repository_def.asset_graph, assets=rerun_assets(catalog))
    return dg.SensorResult(
        run_requests=[dg.RunRequest.for_asset_graph_subset(subset, tags={RETRY_TAG: SENSOR_TAG_VALUE})],
        cursor=next_cursor(requested, fresh=fresh, failed=failed, in_progress=in_progress),
    )
