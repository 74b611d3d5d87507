"""A circuit breaker shared by every process through the ledger database.

After `failure_threshold` consecutive provider failures within `window_s` it opens for
`cooldown_s`; while open, requests fail fast and nothing is sent. After the cool-down exactly one
process gets a trial request (claimed atomically); its success closes the circuit, its failure
opens it again. State is derived from an append-only event table; `breaker_state` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, insert, select

from asset_pipeline.ledger.database import aware, exclusive
from asset_pipeline.ledger.schema import circuit_events


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cool-down over: the next request is the trial


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class BreakerEvent:
    kind: str  # success | failure | open | trial | close
    at: datetime


def breaker_state(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> BreakerState:
    """The state after `events` (oldest first)."""
    if _open_since(events) is None:
        return BreakerState.CLOSED
    return BreakerState.OPEN if open_for_s(events, now, config) > 0 else BreakerState.HALF_OPEN


def open_for_s(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> float:
    """Seconds until the next trial request may go out (0 when closed or half-open).

    An open circuit waits out its cool-down; a trial in flight holds it open for another cool-down
    at most, in case the process sending it died and never reports."""
    since = _open_since(events)
    if since is None:
        return 0.0
    cooldown = timedelta(seconds=config.cooldown_s)
    trials = [e.at for e in events[since:] if e.kind == "trial"]
    until = max([events[since].at + cooldown] + [at + cooldown for at in trials[-1:]])
    return max(0.0, (until - now).total_seconds())


def trial_in_flight(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> bool:
    """A trial request is out and its verdict (close or open) has not come back yet."""
    since = _open_since(events)
    return since is not None and any(e.kind == "trial" and now - e.at < timedelta(seconds=config.cooldown_s)
                                     for e in events[since:])


def _open_since(events: list[BreakerEvent]) -> int | None:
    """Index of the "open" event the circuit is still open from, or None when it is closed."""
    last_open = next((i for i in range(len(events) - 1, -1, -1) if events[i].kind == "open"), None)
    if last_open is None or any(e.kind == "close" for e in events[last_open:]):
        return None
    return last_open


def consecutive_failures(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> int:
    """Failures since the last success or close, counting only those inside the window."""
    count = 0
    for event in reversed(events):
        if event.kind in ("success", "close"):
            break
        if event.kind == "failure" and now - event.at <= timedelta(seconds=config.window_s):
            count += 1
    return count


class CircuitOpen(Exception):
    """No request may be sent now."""


class CircuitBreaker:
    def __init__(self, engine: Engine, *, provider: str, config: BreakerConfig):
        self.engine, self.provider, self.config = engine, provider, config

    def before_request(self) -> bool:
        """True if this request is the trial; raise `CircuitOpen` if it may not be sent."""
        if self.state() is BreakerState.CLOSED:  # the common case: a read, no write lock
            return False
        with exclusive(self.engine, scope=f"circuit:{self.provider}") as connection:
            now = datetime.now(UTC)
            state = breaker_state(self._events(connection), now, self.config)
            if state is BreakerState.OPEN:
                raise CircuitOpen(f"provider circuit open ({self.provider}); no request sent")
            if state is BreakerState.HALF_OPEN:
                self._add(connection, "trial", now)
                return True
            return False

    def record(self, *, ok: bool, trial: bool) -> None:
        if ok and not trial and self._last_kind() == "success":
            return  # another success after a success changes nothing; skip the write
        with exclusive(self.engine, scope=f"circuit:{self.provider}") as connection:
            now = datetime.now(UTC)
            self._add(connection, "success" if ok else "failure", now)
            if trial:
                self._add(connection, "close" if ok else "open", now)
            elif not ok:
                events = self._events(connection)
                closed = breaker_state(events, now, self.config) is BreakerState.CLOSED
                if closed and consecutive_failures(events, now, self.config) >= self.config.failure_threshold:
                    self._add(connection, "open", now)

    def _last_kind(self) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(circuit_events.c.kind).where(circuit_events.c.provider == self.provider)
                .order_by(circuit_events.c.id.desc()).limit(1)
            ).scalar_one_or_none()

    def state(self) -> BreakerState:
        with self.engine.connect() as connection:
            return breaker_state(self._events(connection), datetime.now(UTC), self.config)

    def open_for_s(self) -> float:
        with self.engine.connect() as connection:
            return open_for_s(self._events(connection), datetime.now(UTC), self.config)

    def trial_in_flight(self) -> bool:
        with self.engine.connect() as connection:
            return trial_in_flight(self._events(connection), datetime.now(UTC), self.config)

    def _events(self, connection) -> list[BreakerEvent]:  # type: ignore[no-untyped-def]
        rows = connection.execute(
            select(circuit_events.c.kind, circuit_events.c.created_at)
            .where(circuit_events.c.provider == self.provider)
            .order_by(circuit_events.c.id.desc())
            .limit(500)
        ).all()
        return [BreakerEvent(kind, aware(at)) for kind, at in reversed(rows)]

    def _add(self, connection, kind: str, now: datetime) -> None:  # type: ignore[no-untyped-def]
        connection.execute(insert(circuit_events).values(provider=self.provider, kind=kind, created_at=now))
