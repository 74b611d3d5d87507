"""`rejected_images_sensor` (off by default): render a new take of every rejected image within budget.

Like `failed_images_sensor`, it requests one backfill of exactly the partitions due (whose current
image was rejected) with `RunRequest.for_asset_graph_subset`, and its cursor remembers what it
requested until that partition has a new image, so a tick never asks twice for the same take.
Paid backends: nothing is requested while the provider circuit is open or no budget remains today.
"""

from __future__ import annotations

import json

import dagster as dg

from asset_pipeline.ledger.circuit import BreakerState
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.retry_selection import RETRY_TAG, describe_keys, images_subset
from asset_pipeline.review_selection import current_images, rejected_partitions

SENSOR_TAG_VALUE = "rejected_images_sensor"


@dg.sensor(
    name="rejected_images_sensor",
    minimum_interval_seconds=60,
    asset_selection=["images"],
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Backfills `images` partitions whose current image was rejected in review (a new take), "
    "when the provider circuit is not open and budget remains.",
)
def rejected_images_sensor(
    context: dg.SensorEvaluationContext, image_generator: ImageGenerator, catalog_file: CatalogFile,
    ledger: LedgerResource,
) -> dg.SensorResult | dg.SkipReason:
    catalog = catalog_file.load()
    engine = ledger.engine
    rejected = rejected_partitions(context.instance, catalog, engine)
    # cursor: partition -> the sha256 of the rejected image this sensor asked to replace
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = current_images(context.instance)
    requested = {key: sha for key, sha in requested.items() if current.get(key) == sha}
    fresh = [key for key in rejected if key not in requested]
    cursor = json.dumps({**requested, **{key: current[key] for key in fresh}}, sort_keys=True)
    if not fresh:
        reason = "no rejected image partitions" if not rejected else \
            f"{len(rejected)} rejected partition(s) already requested: {describe_keys(rejected)}"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(requested, sort_keys=True))
    if image_generator.is_paid:
        if ledger.circuit(provider=image_generator.provider).state is BreakerState.OPEN:
            return dg.SkipReason("provider circuit is open; waiting for its cool-down to end")
        if ledger.remaining_budget().today_usd <= 0:
            return dg.SkipReason("no budget remains today")
    context.log.info(f"requesting a new take of {len(fresh)} rejected image(s): {describe_keys(fresh)}")
    subset = images_subset(fresh, context.repository_def.asset_graph)
    return dg.SensorResult(
        run_requests=[dg.RunRequest.for_asset_graph_subset(subset, tags={RETRY_TAG: SENSOR_TAG_VALUE})],
        cursor=cursor,
    )
