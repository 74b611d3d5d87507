"""The attempt log: every failed generation attempt, its class, and the strategy chosen next."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert

from asset_pipeline.ledger.database import history_rows
from asset_pipeline.ledger.schema import generation_attempts


class AttemptLog:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(
        self, *, run_id: str, partition_key: str, request_hash: str, model: str, attempt: int,
        failure_class: str, strategy: str, detail: str,
    ) -> None:
        with self.engine.begin() as connection:  # an append: no lock
            connection.execute(
                insert(generation_attempts).values(
                    run_id=run_id, partition_key=partition_key, request_hash=request_hash, model=model,
                    attempt=attempt, failure_class=failure_class, strategy=strategy, detail=detail[:2000],
                    created_at=datetime.now(UTC),
                )
            )

    def history(self, *, run_id: str | None = None) -> list[dict]:
        return history_rows(self.engine, generation_attempts, run_id=run_id)
