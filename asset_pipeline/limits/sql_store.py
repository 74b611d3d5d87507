"""Shared provider limits in the ledger database (SQLite or PostgreSQL), which every run already uses.

Each operation is one short transaction under `ledger.database.exclusive`, with a scope per provider
(one PostgreSQL advisory lock per provider; SQLite's BEGIN IMMEDIATE), so read-modify-write of the
rate's theoretical arrival time, the in-flight leases and the adaptive limit is atomic across
processes and machines. Times are epoch seconds from each machine's clock (NTP keeps a cluster's
clocks within milliseconds, small against a 100 ms create interval).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from asset_pipeline.ledger.database import exclusive
from asset_pipeline.ledger.schema import provider_limits, provider_slots
from asset_pipeline.limits.aimd import AimdState
from asset_pipeline.limits.gcra import reserve


class SqlLimitStore:
    """The rate and the slots take separate locks (one provider's creates never queue behind its
    slot bookkeeping); releasing a slot is a plain delete of its own row."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._ready: set[str] = set()

    def _ensure(self, key: str) -> None:
        """Create the provider's row once, under a lock of its own (two first users cannot both insert)."""
        if key not in self._ready:
            with exclusive(self.engine, scope=f"provider_limits:{key}") as connection:
                self._row(connection, key)
            self._ready.add(key)

    def reserve_rate(self, key: str, *, interval: float, burst: int) -> float:
        self._ensure(key)
        with exclusive(self.engine, scope=f"provider_rate:{key}") as connection:
            row = self._row(connection, key)
            tat, wait = reserve(row["rate_tat"] or 0.0, time.time(), interval=interval, burst=burst)
            connection.execute(update(provider_limits).where(provider_limits.c.key == key).values(rate_tat=tat))
        return wait

    def try_slot(self, key: str, *, holder: str, lease_s: float, initial: AimdState) -> tuple[bool, AimdState]:
        self._ensure(key)
        now = time.time()
        with exclusive(self.engine, scope=f"provider_slots:{key}") as connection:
            state = _state(self._row(connection, key), initial)
            connection.execute(delete(provider_slots).where(provider_slots.c.key == key,
                                                            provider_slots.c.expires_at <= now))
            held = connection.execute(select(func.count()).select_from(provider_slots)
                                      .where(provider_slots.c.key == key)).scalar_one()
            if held >= state.slots:
                return False, state
            connection.execute(insert(provider_slots).values(holder=holder, key=key, expires_at=now + lease_s))
        return True, state

    def renew_slots(self, key: str, *, holders: list[str], lease_s: float) -> None:
        if holders:
            with self.engine.begin() as connection:
                connection.execute(update(provider_slots).where(provider_slots.c.holder.in_(holders))
                                   .values(expires_at=time.time() + lease_s))

    def release_slot(self, key: str, *, holder: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(provider_slots).where(provider_slots.c.holder == holder))

    def update_limit(self, key: str, change: Callable[[AimdState], AimdState], *, initial: AimdState) -> AimdState:
        self._ensure(key)
        with exclusive(self.engine, scope=f"provider_slots:{key}") as connection:
            state = change(_state(self._row(connection, key), initial))
            connection.execute(update(provider_limits).where(provider_limits.c.key == key).values(
                concurrency_limit=state.limit, baseline_s=state.baseline_s,
                last_decrease_at=None if state.last_decrease_at == float("-inf") else state.last_decrease_at))
        return state

    def read_limit(self, key: str) -> AimdState | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(provider_limits).where(provider_limits.c.key == key)).mappings().first()
        return None if row is None or row["concurrency_limit"] is None else _state(dict(row), AimdState(limit=1))

    @staticmethod
    def _row(connection: Connection, key: str) -> dict:
        """The provider's row, created on first use (inside the caller's exclusive transaction)."""
        row = connection.execute(select(provider_limits).where(provider_limits.c.key == key)).mappings().first()
        if row is None:
            connection.execute(insert(provider_limits).values(key=key, rate_tat=0.0))
            return {"key": key, "rate_tat": 0.0, "concurrency_limit": None, "baseline_s": None, "last_decrease_at": None}
        return dict(row)


def _state(row: dict, initial: AimdState) -> AimdState:
    if row.get("concurrency_limit") is None:
        return initial
    last = row.get("last_decrease_at")
    return AimdState(limit=float(row["concurrency_limit"]), baseline_s=row.get("baseline_s"),
                     last_decrease_at=float("-inf") if last is None else float(last))
