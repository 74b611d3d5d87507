"""The prediction journal: which provider prediction serves which request, and what became of it.

A prediction id is journaled the moment the provider returns it, so a run that dies afterwards
can re-attach to the prediction instead of paying for a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select

from asset_pipeline.ledger.budget_ledger import Reservation
from asset_pipeline.ledger.database import aware, history_rows
from asset_pipeline.ledger.schema import prediction_journal

# Replicate deletes prediction outputs an hour after they finish; older ones cannot be re-used.
RESUMABLE_FOR = timedelta(minutes=55)
# "fetch_failed": its output could not be downloaded yet (re-attached a bounded number of times,
# see MAX_FETCH_TRIES); "unfetchable": given up on, charged, never re-attached again.
RESUMABLE_STATUSES = frozenset({"created", "succeeded", "fetch_failed"})
MAX_FETCH_TRIES = 3


@dataclass(frozen=True)
class JournaledPrediction:
    prediction_id: str
    reservation_id: str
    status: str
    created_at: datetime


class PredictionJournal:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, reservation: Reservation, *, prediction_id: str, status: str, detail: str | None = None) -> None:
        with self.engine.begin() as connection:  # an append (readers take the newest row): no lock
            connection.execute(
                insert(prediction_journal).values(
                    **reservation.row_values(),
                    prediction_id=prediction_id,
                    status=status,
                    detail=detail,
                    created_at=datetime.now(UTC),
                )
            )

    def resumable(self, request_hash: str) -> JournaledPrediction | None:
        """The newest prediction for `request_hash` that may still deliver its image, if any."""
        latest, first_seen = self._latest(request_hash)
        now = datetime.now(UTC)
        for prediction_id in reversed(list(latest)):
            row = latest[prediction_id]
            if row["status"] in RESUMABLE_STATUSES and now - first_seen[prediction_id] < RESUMABLE_FOR:
                return JournaledPrediction(prediction_id, row["reservation_id"], row["status"], first_seen[prediction_id])
        return None

    def expired(self, request_hash: str) -> list[JournaledPrediction]:
        """Predictions for `request_hash` still `created` / `succeeded` / `fetch_failed` but too old to
        re-attach to (their output is gone): their reservations must be closed another way."""
        latest, first_seen = self._latest(request_hash)
        now = datetime.now(UTC)
        return [
            JournaledPrediction(prediction_id, row["reservation_id"], row["status"], first_seen[prediction_id])
            for prediction_id, row in latest.items()
            if row["status"] in RESUMABLE_STATUSES and now - first_seen[prediction_id] >= RESUMABLE_FOR
        ]

    def _latest(self, request_hash: str) -> tuple[dict[str, dict], dict[str, datetime]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(prediction_journal)
                .where(prediction_journal.c.request_hash == request_hash)
                .order_by(prediction_journal.c.id)
            ).mappings().all()
        latest: dict[str, dict] = {}
        first_seen: dict[str, datetime] = {}
        for row in rows:
            latest[row["prediction_id"]] = dict(row)
            first_seen.setdefault(row["prediction_id"], aware(row["created_at"]))
        return latest, first_seen

    def prediction_ids(self, request_hash: str) -> frozenset[str]:
        """Every prediction ever journaled for `request_hash`."""
        with self.engine.connect() as connection:
            return frozenset(connection.execute(
                select(prediction_journal.c.prediction_id).where(prediction_journal.c.request_hash == request_hash)
            ).scalars())

    def count(self, prediction_id: str, status: str) -> int:
        """How many times `prediction_id` was journaled with `status` (e.g. failed output fetches)."""
        with self.engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).where(prediction_journal.c.prediction_id == prediction_id,
                                           prediction_journal.c.status == status)
            ).scalar_one())

    def latest_status(self, reservation_id: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(prediction_journal.c.status)
                .where(prediction_journal.c.reservation_id == reservation_id)
                .order_by(prediction_journal.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()

    def history(self, *, prediction_id: str | None = None) -> list[dict]:
        return history_rows(self.engine, prediction_journal, prediction_id=prediction_id)
