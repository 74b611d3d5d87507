"""`failed_images_sensor` (off by default): re-run failed images while the provider and budget allow.

It requests a backfill of exactly the failed partitions when the provider's circuit is not open and
budget remains. The cursor remembers the set it last requested, so the same failures are never
requested twice; a new failure changes the set and is requested on the next tick.
"""

import hashlib

import dagster as dg

from asset_pipeline.ledger.circuit import BreakerState
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.retry_selection import RETRY_TAG, images_subset, partitions_with_status


@dg.sensor(
    name="failed_images_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Backfills failed `images` partitions when the provider circuit is closed and budget remains.",
)
def failed_images_sensor(
    context: dg.SensorEvaluationContext, image_generator: ImageGenerator, catalog_file: CatalogFile
) -> dg.SensorResult | dg.SkipReason:
    catalog = catalog_file.load()
    failed = partitions_with_status(context.instance, catalog, {"failed", "fallback"})
    if not failed:
        return dg.SkipReason("no failed image partitions")
    if image_generator.active_backend.is_paid:
        # Half-open is fine: the cool-down is over and the backfill's first request is the trial
        # that closes the circuit (nothing else would ever close it).
        if image_generator.circuit.state() is BreakerState.OPEN:
            return dg.SkipReason("provider circuit is open; waiting for its cool-down to end")
        if image_generator.ledger.status(image_generator.caps).remaining_today_usd <= 0:
            return dg.SkipReason("no budget remains today")
    fingerprint = hashlib.sha256("\n".join(failed).encode()).hexdigest()[:16]
    if context.cursor == fingerprint:
        return dg.SkipReason(f"these {len(failed)} failed partition(s) were already requested")
    subset = images_subset(failed, context.repository_def.asset_graph)
    return dg.SensorResult(
        run_requests=[dg.RunRequest.for_asset_graph_subset(subset, tags={RETRY_TAG: f"sensor:{fingerprint}"})],
        cursor=fingerprint,
    )
