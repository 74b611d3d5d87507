"""The `approved` asset check on every `images` partition: a warning until a person approves the image.

Dagster 1.13 supports partitioned check specs (`AssetCheckSpec(partitions_def=...)`) and partitioned
`AssetCheckEvaluation`s, so each partition's review state shows in the asset's partition view. The
check is evaluated where the state can change: in the `images` step for every new image (a new
image is unreviewed unless that exact image was reviewed before), and by `review_sync_sensor` for
every verdict recorded from the CLI or the hub. Its severity is WARN: an unreviewed or rejected
image is work left for a person, not a broken pipeline.
"""

from __future__ import annotations

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.dagster_internals import AssetCheckEvaluationTargetMaterializationData
from asset_pipeline.ledger.reviews import Review, State

APPROVED = "approved"


def approved_check_spec(partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        APPROVED, asset=IMAGES, partitions_def=partitions_def,
        description="A person approved this exact image (review loop); a warning while unreviewed or rejected.",
    )


def approved_evaluation(
    partition_key: str, state: State, review: Review | None, *, sha256: str,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    metadata: dict[str, object] = {"review_state": state, "sha256": sha256}
    if review is not None:
        metadata["reviewed_at"] = review.created_at.isoformat()
        if review.note:
            metadata["note"] = review.note[:500]
    description = {"approved": "approved by a reviewer", "rejected": "rejected: a new take is due",
                   "unreviewed": "not reviewed yet"}[state]
    return dg.AssetCheckEvaluation(
        asset_key=IMAGES, check_name=APPROVED, passed=state == "approved", partition=partition_key,
        severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata,
        target_materialization_data=target,
    )
