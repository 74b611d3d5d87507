"""A failure-rate circuit breaker shared by every process through the ledger database.

Modelled on resilience4j's count-based sliding window and Envoy's outlier detection, because a
batch of hundreds of images meets random provider faults as a matter of course: a run of
consecutive failures says little, a high failure *rate* over enough calls says the provider is
down.

- closed: every provider call's verdict is an event. When at least `minimum_calls` of the last
  `window_calls` calls (inside `window_s`, since the circuit last closed) were made and at least
  `failure_rate` of them failed, the circuit opens.
- open: nothing is sent for `cooldown_s`.
- half-open: up to `half_open_calls` trial requests are let through (claimed atomically, across
  processes). A majority of successes closes the circuit; once a majority can no longer be
  reached it opens again for another cool-down. A trial whose process died without a verdict
  frees its slot after a cool-down.

State is derived from an append-only event table; the rules below (`breaker_state`, ...) are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, insert, select

from asset_pipeline.errors import CircuitOpenError
from asset_pipeline.ledger.database import aware, exclusive
from asset_pipeline.ledger.schema import circuit_events, generation_attempts

PROVIDER_FAILURE_CLASSES = ("transient", "model_unavailable")
# How long a request waiting past the longest outage trusts an unanswered trial (a whole render:
# create, a slow model's predict time, the download). Longer than a cool-down, which only bounds
# how long a lost trial keeps its slot; a trial slower than the cool-down must not make the
# requests waiting for its verdict give up beside it.
TRIAL_VERDICT_WAIT_S = 300.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cool-down over: trial requests may go out


@dataclass(frozen=True)
class BreakerConfig:
    failure_rate: float = 0.5  # share of failed calls in the window that opens the circuit
    # A wide window: at 30% random faults a window of 20 reaches 50% failures by chance in about 5%
    # of its positions (a batch of hundreds of calls would trip again and again); of 50, in 0.2%.
    window_calls: int = 50  # the sliding window: this many most recent calls
    minimum_calls: int = 20  # fewer calls than this in the window never open the circuit
    window_s: float = 60.0  # calls older than this fall out of the window
    cooldown_s: float = 30.0
    half_open_calls: int = 3  # trial requests let through when half-open

    @property
    def trial_successes_needed(self) -> int:
        return self.half_open_calls // 2 + 1


@dataclass(frozen=True)
class BreakerEvent:
    kind: str  # success | failure | open | trial | trial_ok | trial_failed | close
    at: datetime


def breaker_state(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> BreakerState:
    """The state after `events` (oldest first)."""
    if _open_since(events) is None:
        return BreakerState.CLOSED
    if open_for_s(events, now, config) > 0:
        return BreakerState.OPEN
    return BreakerState.HALF_OPEN if free_trial_slots(events, now, config) > 0 else BreakerState.OPEN


def open_for_s(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> float:
    """Seconds left of the cool-down of the latest opening (0 when closed or half-open)."""
    since = _open_since(events)
    if since is None:
        return 0.0
    until = events[since].at + timedelta(seconds=config.cooldown_s)
    return max(0.0, (until - now).total_seconds())


def free_trial_slots(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> int:
    """Trial requests that may still go out in this half-open phase."""
    since = _open_since(events)
    if since is None:
        return 0
    phase = events[since + 1:]
    claims = [e.at for e in phase if e.kind == "trial"]
    verdicts = sum(1 for e in phase if e.kind in ("trial_ok", "trial_failed"))
    cooldown = timedelta(seconds=config.cooldown_s)
    # Verdicts answer the oldest claims; a claim without a verdict for a cool-down was lost.
    pending = sum(1 for at in claims[verdicts:] if now - at < cooldown)
    return max(0, config.half_open_calls - verdicts - pending)


def trial_in_flight(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> bool:
    """A trial request is out and its verdict has not come back yet (trusted for
    `TRIAL_VERDICT_WAIT_S`, or a cool-down when that is longer)."""
    since = _open_since(events)
    if since is None:
        return False
    phase = events[since + 1:]
    claims = [e.at for e in phase if e.kind == "trial"]
    verdicts = sum(1 for e in phase if e.kind in ("trial_ok", "trial_failed"))
    trusted = timedelta(seconds=max(config.cooldown_s, TRIAL_VERDICT_WAIT_S))
    return any(now - at < trusted for at in claims[verdicts:])


def trial_verdict(events: list[BreakerEvent], config: BreakerConfig) -> str | None:
    """"close" once a majority of the trials succeeded, "open" once that can no longer happen."""
    since = _open_since(events)
    if since is None:
        return None
    phase = events[since + 1:]
    ok = sum(1 for e in phase if e.kind == "trial_ok")
    failed = sum(1 for e in phase if e.kind == "trial_failed")
    if ok >= config.trial_successes_needed:
        return "close"
    if failed > config.half_open_calls - config.trial_successes_needed:
        return "open"
    return None


def should_open(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> bool:
    """A closed circuit's window holds enough calls and enough of them failed."""
    if _open_since(events) is not None:
        return False
    window = window_calls(events, now, config)
    return len(window) >= config.minimum_calls and window.count("failure") >= config.failure_rate * len(window)


def window_calls(events: list[BreakerEvent], now: datetime, config: BreakerConfig) -> list[str]:
    """Verdicts ("success" / "failure") of the sliding window, newest last."""
    last_close = next((i for i in range(len(events) - 1, -1, -1) if events[i].kind == "close"), -1)
    horizon = timedelta(seconds=config.window_s)
    calls = [e.kind for e in events[last_close + 1:]
             if e.kind in ("success", "failure") and now - e.at <= horizon]
    return calls[-config.window_calls:]


def unavailable_since(events: list[BreakerEvent]) -> datetime | None:
    """When the current outage began: the first opening since the circuit last closed."""
    if _open_since(events) is None:
        return None
    last_close = next((i for i in range(len(events) - 1, -1, -1) if events[i].kind == "close"), -1)
    return next(e.at for e in events[last_close + 1:] if e.kind == "open")


def _open_since(events: list[BreakerEvent]) -> int | None:
    """Index of the "open" event the circuit is still open from, or None when it is closed."""
    last_open = next((i for i in range(len(events) - 1, -1, -1) if events[i].kind == "open"), None)
    if last_open is None or any(e.kind == "close" for e in events[last_open:]):
        return None
    return last_open


class CircuitBreaker:
    def __init__(self, engine: Engine, *, provider: str, config: BreakerConfig):
        self.engine, self.provider, self.config = engine, provider, config

    def before_request(self, partition_key: str = "") -> bool:
        """True if this request is a trial; raise `CircuitOpenError` (for `partition_key`) if it may not be sent."""
        if self.state() is BreakerState.CLOSED:  # the common case: a read, no write lock
            return False
        with exclusive(self.engine, scope=f"circuit:{self.provider}") as connection:
            now = datetime.now(UTC)
            events = self._events(connection)
            state = breaker_state(events, now, self.config)
            if state is BreakerState.OPEN:
                since = unavailable_since(events) or now
                raise CircuitOpenError(partition_key, f"provider circuit open ({self.provider}); no request sent",
                                       provider=self.provider, since=since)
            if state is BreakerState.HALF_OPEN:
                self._add(connection, "trial", now)
                return True
            return False

    def record(self, *, ok: bool, trial: bool) -> None:
        """One provider call's verdict; `trial` when `before_request` made it a trial. Every verdict
        is written: the failure rate needs the successes too."""
        with exclusive(self.engine, scope=f"circuit:{self.provider}") as connection:
            now = datetime.now(UTC)
            self._add(connection, "success" if ok else "failure", now)
            if ok and not trial:
                return  # a success decides nothing by itself; it only counts in the window
            events = self._events(connection)
            if trial and _open_since(events) is not None:
                self._add(connection, "trial_ok" if ok else "trial_failed", now)
                verdict = trial_verdict(self._events(connection), self.config)
                if verdict is not None:
                    self._add(connection, verdict, now)
            elif not ok and should_open(events, now, self.config):
                self._add(connection, "open", now)

    def state(self) -> BreakerState:
        with self.engine.connect() as connection:
            return breaker_state(self._events(connection), datetime.now(UTC), self.config)

    def open_for_s(self) -> float:
        with self.engine.connect() as connection:
            return open_for_s(self._events(connection), datetime.now(UTC), self.config)

    def trial_in_flight(self) -> bool:
        with self.engine.connect() as connection:
            return trial_in_flight(self._events(connection), datetime.now(UTC), self.config)

    def unavailable_since(self) -> datetime | None:
        with self.engine.connect() as connection:
            return unavailable_since(self._events(connection))

    def last_provider_error(self) -> str | None:
        """The latest provider failure any run logged (the attempt log keeps its detail)."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(generation_attempts.c.detail)
                .where(generation_attempts.c.failure_class.in_(PROVIDER_FAILURE_CLASSES))
                .order_by(generation_attempts.c.id.desc()).limit(1)
            ).scalar_one_or_none()

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
