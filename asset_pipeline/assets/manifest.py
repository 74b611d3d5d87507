"""`asset_manifest`: JSON listing every materialized image, for the website build and for audits."""

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from asset_pipeline.assets.keys import ASSET_MANIFEST, IMAGE_VARIANTS, IMAGES
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.storage.atomic import atomic_write

MANIFEST_FILE = "manifest.json"
_FIELDS = ("sha256", "width", "height", "cost_usd", "backend", "model", "seed", "request_hash", "cache_hit", "category")


def manifest_entry(record: dg.EventLogRecord, variants: dg.EventLogRecord | None) -> dict[str, Any]:
    materialization = record.asset_materialization
    assert materialization is not None
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    entry: dict[str, Any] = {"id": record.partition_key, "path": metadata.get("path")}
    entry.update({field: metadata.get(field) for field in _FIELDS})
    entry["materialized_at"] = datetime.fromtimestamp(record.timestamp, UTC).isoformat()
    entry["run_id"] = record.run_id
    if variants is not None and variants.asset_materialization is not None:
        entry["variants"] = {key: value.value for key, value in variants.asset_materialization.metadata.items()}
    return entry


@dg.asset(
    key=ASSET_MANIFEST,
    deps=[IMAGES, IMAGE_VARIANTS],
    kinds={"json"},
    description="Every materialized image with its path, sha256, size, cost, model and time.",
)
def asset_manifest(context: dg.AssetExecutionContext, image_store: ImageStore) -> dg.MaterializeResult:
    images = latest_materializations(context.instance, IMAGES)
    variants = latest_materializations(context.instance, IMAGE_VARIANTS)
    entries = [manifest_entry(images[key], variants.get(key)) for key in sorted(images)]
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "count": len(entries),
        "total_cost_usd": round(sum(entry["cost_usd"] or 0.0 for entry in entries), 6),
        "images": entries,
    }
    path = image_store.resolve(MANIFEST_FILE)
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True).encode())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "count": len(entries),
            "total_cost_usd": dg.MetadataValue.float(document["total_cost_usd"]),
        }
    )
