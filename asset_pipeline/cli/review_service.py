"""What the review loop shows and accepts, shared by `asset-pipeline review` and the hub's review view.

The current image of a partition is the one of its newest `images` materialization (its `sha256`
metadata); a verdict is accepted only for that exact image, so a person never approves or rejects
an image that was replaced while they looked at it (the hub answers 409 and the page reloads).
Reads the Dagster instance, so it lives in the command layer; the hub gets it injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from sqlalchemy import Engine

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline.catalog import Catalog
from asset_pipeline.errors import ReviewError
from asset_pipeline.ledger.reviews import (
    Review,
    check_partition_key,
    check_sha256,
    latest_verdicts,
    record_review,
    review_states,
)
from asset_pipeline.review_selection import report_review

STATES = ("unreviewed", "rejected", "approved")
MAX_HISTORY = 50


class UnknownPartition(ReviewError):
    """The partition key is well-formed but not in the catalog (the hub answers 404)."""


class NotCurrentImage(ReviewError):
    """The sha256 is not the partition's current image: unknown, or replaced since (the hub answers 409)."""


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {key: value.value for key, value in materialization.metadata.items()} if materialization else {}


@dataclass
class ReviewService:
    """Review items, history and verdicts over one Dagster instance and one ledger database."""

    engine: Engine
    instance: Callable[[], dg.DagsterInstance]  # the open instance (the hub keeps one for its lifetime)
    catalog: Callable[[], Catalog]  # the catalog with review takes applied

    def current(self) -> dict[str, dg.EventLogRecord]:
        return latest_materializations(self.instance(), IMAGES)

    def items(self, state: str | None = None) -> dict[str, Any]:
        """Every catalog partition with an image: its image, prompt, cost, take and review state."""
        if state is not None and state not in STATES:
            raise ReviewError("state", f"expected one of {', '.join(STATES)}")
        catalog = self.catalog()
        latest = self.current()
        shas = {key: str(_metadata(record).get("sha256") or "") or None for key, record in latest.items()}
        states = review_states(self.engine, {key: shas.get(key) for key in catalog.ids})
        counts = dict.fromkeys(STATES, 0)
        items = []
        for spec in catalog.images:
            record = latest.get(spec.id)
            if record is None:
                continue
            found, review = states[spec.id]
            counts[found] += 1
            if state is not None and found != state:
                continue
            items.append(self._item(spec.id, record, found, review, next_take=spec.take))
        return {"items": items, "counts": counts, "total": sum(counts.values())}

    def _item(self, key: str, record: dg.EventLogRecord, state: str, review: Review | None, *,
              next_take: int) -> dict[str, Any]:
        metadata = _metadata(record)
        take = int(metadata.get("take") or 0)
        return {
            "partition_key": key, "sha256": metadata.get("sha256"), "state": state,
            "note": review.note if review else "", "prompt_addition": review.prompt_addition if review else None,
            "reviewed_at": review.created_at.isoformat() if review else None,
            "prompt": metadata.get("prompt"), "cost_usd": metadata.get("cost_usd"), "take": take,
            "next_take": next_take, "rerender_due": next_take != take,
            "seed": metadata.get("seed"), "model": metadata.get("model"), "width": metadata.get("width"),
            "height": metadata.get("height"), "run_id": record.run_id,
            "materialized_at": datetime.fromtimestamp(record.timestamp, UTC).isoformat(),
        }

    def history(self, partition_key: str) -> list[dict[str, Any]]:
        """The partition's images, newest first (the current one first), each with its verdict."""
        key = self._known(partition_key)
        records = self.instance().fetch_materializations(
            dg.AssetRecordsFilter(asset_key=IMAGES, asset_partitions=[key]), limit=MAX_HISTORY).records
        verdicts = latest_verdicts(self.engine, [key])
        history = []
        for position, record in enumerate(records):
            metadata = _metadata(record)
            sha = str(metadata.get("sha256") or "")
            verdict = verdicts.get((key, sha))
            history.append({"sha256": sha, "take": int(metadata.get("take") or 0), "current": position == 0,
                            "state": verdict.decision if verdict else "unreviewed",
                            "note": verdict.note if verdict else "", "cost_usd": metadata.get("cost_usd"),
                            "prompt": metadata.get("prompt"), "run_id": record.run_id,
                            "materialized_at": datetime.fromtimestamp(record.timestamp, UTC).isoformat()})
        return history

    def review(self, partition_key: str, *, sha256: str | None, decision: str, note: str = "",
               prompt_addition: str | None = None) -> dict[str, Any]:
        """Record a verdict on the partition's current image; `sha256` None means "the current one"."""
        key = self._known(partition_key)
        record = latest_materializations_of(self.instance(), key)
        current = str(_metadata(record).get("sha256") or "") if record else ""
        if not current:
            raise NotCurrentImage("sha256", f"partition '{key}' has no image yet")
        if sha256 is not None:
            check_sha256(sha256)
            if sha256 != current:
                raise NotCurrentImage("sha256", f"{sha256[:12]}… is not the current image of '{key}' "
                                                f"(it is {current[:12]}…); reload and review that one")
        saved = record_review(self.engine, partition_key=key, sha256=current, decision=decision, note=note,
                              prompt_addition=prompt_addition)
        catalog = self.catalog()
        stale = report_review(self.instance(), catalog, self.engine, key, source="review")
        return {**saved.as_dict(), "next_take": catalog.get(key).take, "take_changed": stale}

    def _known(self, partition_key: str) -> str:
        key = check_partition_key(partition_key)
        if key not in self.catalog().by_id:
            raise UnknownPartition("partition_key", f"'{key}' is not in the catalog")
        return key


def latest_materializations_of(instance: dg.DagsterInstance, partition_key: str) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=IMAGES, asset_partitions=[partition_key]), limit=1).records
    return records[0] if records else None
