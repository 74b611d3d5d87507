"""Review verdicts on images, append-only in the ledger database, and the takes they ask for.

A verdict is about one exact image: the partition key and the sha256 of the image reviewed. The
state of a partition is the newest verdict on its *current* image, so a verdict never carries over
to an image that replaced the one reviewed. A partition's take is the number of distinct images of
it whose newest verdict is a rejection (so rejecting the same image twice asks for one new take,
and approving a rejected image before it was replaced withdraws that take); the prompt additions of
those rejections go to the next take's prompt (see `ImageSpec.for_take`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, insert, select

from asset_pipeline.catalog.spec import MAX_PROMPT_ADDITION_CHARS, SLUG_PATTERN, Catalog
from asset_pipeline.errors import ReviewError
from asset_pipeline.ledger.database import aware
from asset_pipeline.ledger.schema import reviews

Decision = Literal["approved", "rejected"]
State = Literal["approved", "rejected", "unreviewed"]
DECISIONS: tuple[Decision, ...] = ("approved", "rejected")
MAX_NOTE_CHARS = 2000
_SLUG = re.compile(SLUG_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Controls but tab and newline, and the invisible bidi / zero-width characters the catalog refuses.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Review:
    id: int
    partition_key: str
    sha256: str
    decision: Decision
    note: str
    prompt_addition: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "partition_key": self.partition_key, "sha256": self.sha256,
                "decision": self.decision, "note": self.note, "prompt_addition": self.prompt_addition,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Take:
    """How many images of a partition were rejected, and the prompt additions their rejections asked for."""

    rejections: int
    prompt_additions: tuple[str, ...]

    def as_tuple(self) -> tuple[int, tuple[str, ...]]:
        return self.rejections, self.prompt_additions


def check_partition_key(value: object) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise ReviewError("partition_key", "not a catalog id (lowercase letters, digits, '-' and '_', 1-80 characters)")
    return value


def check_sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ReviewError("sha256", "expected 64 lowercase hex digits (the sha256 of the image reviewed)")
    return value


def _clean(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ReviewError(field, "expected text")
    if len(value) > limit:
        raise ReviewError(field, f"{len(value)} characters; at most {limit}")
    found = _CONTROL.search(value)
    if found:
        raise ReviewError(field, f"must not contain control, bidi or zero-width characters (U+{ord(found.group()):04X})")
    return value.strip()


def record_review(
    engine: Engine, *, partition_key: str, sha256: str, decision: str, note: str = "",
    prompt_addition: str | None = None,
) -> Review:
    """Append one verdict; the caller has checked that `sha256` is the partition's current image."""
    check_partition_key(partition_key)
    check_sha256(sha256)
    if decision not in DECISIONS:
        raise ReviewError("decision", "expected 'approved' or 'rejected'")
    note = _clean("note", note, MAX_NOTE_CHARS)
    addition = _clean("prompt_addition", prompt_addition, MAX_PROMPT_ADDITION_CHARS) if prompt_addition else None
    if addition and decision != "rejected":
        raise ReviewError("prompt_addition", "only a rejection asks for a new take with a changed prompt")
    now = datetime.now(UTC)
    values = {"partition_key": partition_key, "sha256": sha256, "decision": decision, "note": note,
              "prompt_addition": addition or None, "created_at": now}
    with engine.begin() as connection:
        inserted = connection.execute(insert(reviews).values(**values)).inserted_primary_key
    assert inserted is not None
    return Review(id=int(inserted[0]), **values)  # type: ignore[arg-type]


def all_reviews(engine: Engine, *, partition_key: str | None = None, after_id: int = 0) -> list[Review]:
    """Every verdict (of one partition), oldest first, newer than row `after_id`."""
    query = select(reviews).where(reviews.c.id > after_id).order_by(reviews.c.id)
    if partition_key is not None:
        query = query.where(reviews.c.partition_key == partition_key)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [Review(id=row["id"], partition_key=row["partition_key"], sha256=row["sha256"], decision=row["decision"],
                   note=row["note"], prompt_addition=row["prompt_addition"], created_at=aware(row["created_at"]))
            for row in rows]


def latest_verdicts(engine: Engine, partition_keys: Iterable[str] | None = None) -> dict[tuple[str, str], Review]:
    """(partition, sha256) -> the newest verdict on that image."""
    wanted = set(partition_keys) if partition_keys is not None else None
    latest: dict[tuple[str, str], Review] = {}
    for review in all_reviews(engine):
        if wanted is None or review.partition_key in wanted:
            latest[(review.partition_key, review.sha256)] = review
    return latest


def review_states(engine: Engine, current: Mapping[str, str | None]) -> dict[str, tuple[State, Review | None]]:
    """Partition -> its state and verdict, judged on its current image's sha256 (None: no image yet)."""
    latest = latest_verdicts(engine, current)
    states: dict[str, tuple[State, Review | None]] = {}
    for key, sha256 in current.items():
        review = latest.get((key, sha256)) if sha256 else None
        states[key] = (review.decision, review) if review else ("unreviewed", None)
    return states


def takes(engine: Engine) -> dict[str, Take]:
    """Partition -> its take: distinct images whose newest verdict is a rejection, and their additions."""
    rejected: dict[str, list[Review]] = {}
    for review in sorted(latest_verdicts(engine).values(), key=lambda review: review.id):
        if review.decision == "rejected":
            rejected.setdefault(review.partition_key, []).append(review)
    return {key: Take(len(found), tuple(r.prompt_addition for r in found if r.prompt_addition))
            for key, found in rejected.items()}


def catalog_with_takes(catalog: Catalog, engine: Engine) -> Catalog:
    """`catalog` with every partition's take and prompt additions applied (what the next run renders)."""
    return catalog.with_takes({key: take.as_tuple() for key, take in takes(engine).items()})
