"""`asset_manifest`: JSON listing every materialized image, for the website build and for audits.

Each image's `cost_usd` is what its picture cost when it was paid for (the ledger's charges for its
request hash), not what its newest run spent: re-executing a paid partition is a free cache hit,
and the manifest must still add up to the ledger. Images that share one picture (the same request
hash) are counted once in `total_cost_usd`, so the total equals the ledger's charges for the
pictures listed.

Each entry carries its review state (`approved`, `rejected`, `unreviewed`, judged on its own sha256);
run config `approved_only: true` publishes approved images only (the review loop, ledger/reviews.py).
"""

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from asset_pipeline.assets.keys import ASSET_MANIFEST, IMAGE_VARIANTS, IMAGES
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline.ledger.reviews import review_states
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.storage.atomic import atomic_write

MANIFEST_FILE = "manifest.json"
_FIELDS = ("sha256", "width", "height", "backend", "model", "seed", "request_hash", "cache_hit", "category")


def manifest_entry(record: dg.EventLogRecord, variants: dg.EventLogRecord | None) -> dict[str, Any]:
    materialization = record.asset_materialization
    assert materialization is not None
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    entry: dict[str, Any] = {"id": record.partition_key, "path": metadata.get("path")}
    entry.update({field: metadata.get(field) for field in _FIELDS})
    entry["run_cost_usd"] = metadata.get("cost_usd") or 0.0  # what the newest run spent (0 for a cache hit)
    entry["materialized_at"] = datetime.fromtimestamp(record.timestamp, UTC).isoformat()
    entry["run_id"] = record.run_id
    if variants is not None and variants.asset_materialization is not None:
        entry["variants"] = {key: value.value for key, value in variants.asset_materialization.metadata.items()}
    return entry


def with_paid_costs(entries: list[dict[str, Any]], charged: dict[str, float]) -> float:
    """Set each entry's `cost_usd` to what its picture was charged; return the total over distinct
    pictures. A picture the ledger never charged (a free backend) keeps its run's cost."""
    total: dict[str, float] = {}
    for entry in entries:
        request_hash = entry.get("request_hash")
        entry["cost_usd"] = charged.get(request_hash, entry["run_cost_usd"]) if request_hash else entry["run_cost_usd"]
        total[request_hash or entry["id"]] = entry["cost_usd"]
    return round(sum(total.values()), 6)


class ManifestConfig(dg.Config):
    approved_only: bool = Field(
        default=False,
        description="Publish only images approved in review (the review loop); others are left out of the manifest.",
    )


@dg.asset(
    key=ASSET_MANIFEST,
    deps=[IMAGES, IMAGE_VARIANTS],
    kinds={"json"},
    description="Every materialized image with its path, sha256, size, what it cost when paid for, model and time.",
)
def asset_manifest(
    context: dg.AssetExecutionContext, config: ManifestConfig, image_store: ImageStore, ledger: LedgerResource
) -> dg.MaterializeResult:
    images = latest_materializations(context.instance, IMAGES)
    variants = latest_materializations(context.instance, IMAGE_VARIANTS)
    entries = [manifest_entry(images[key], variants.get(key)) for key in sorted(images)]
    # Each image's review state, judged on its own sha256 (a verdict on a replaced image does not count).
    states = review_states(ledger.engine, {e["id"]: e["sha256"] for e in entries})
    for entry in entries:
        state, review = states[entry["id"]]
        entry["review_state"] = state
        entry["review_note"] = review.note if review and review.note else None
    withheld = 0
    if config.approved_only:
        withheld = sum(1 for entry in entries if entry["review_state"] != "approved")
        entries = [entry for entry in entries if entry["review_state"] == "approved"]
    charged = ledger.charged_by_request([e["request_hash"] for e in entries if e["request_hash"]])
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "count": len(entries),
        "approved_only": config.approved_only,
        "withheld_unapproved": withheld,
        "total_cost_usd": with_paid_costs(entries, charged),
        "images": entries,
    }
    path = image_store.resolve(MANIFEST_FILE)
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True).encode())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "count": len(entries),
            "approved_only": config.approved_only,
            "withheld_unapproved": withheld,
            "total_cost_usd": dg.MetadataValue.float(document["total_cost_usd"]),
        }
    )
