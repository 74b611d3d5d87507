"""Adaptive concurrency, additive increase / multiplicative decrease (AIMD): the pure arithmetic.

Like Netflix concurrency-limits' `AIMDLimit` (and TCP's congestion window): every healthy answer
adds `increase / limit` (about +1 per round trip at full use); a 429, a timeout or a server error
multiplies the limit by `decrease`, at most once per `cooldown` (one round trip: the requests
already in flight when the provider pushed back all report it, and must not each halve it).

"Slows down" counts as push-back too, gradient style: a success slower than `slow_factor` times
the smoothed latency (`baseline_s`, an EWMA) decreases the limit, while the baseline moves toward
the new latency, so a provider that has settled at a slower pace stops counting as slow and the
limit grows again. No I/O here: the stores (`sql_store.py`, `redis_store.py`) apply `observe`
atomically to the state every run shares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Outcome = Literal["ok", "throttled", "overloaded", "neutral"]


@dataclass(frozen=True)
class AimdConfig:
    max_limit: float
    min_limit: float = 1.0
    increase: float = 1.0
    decrease: float = 0.5
    slow_factor: float = 2.0
    baseline_alpha: float = 0.1
    min_cooldown_s: float = 1.0

    def __post_init__(self) -> None:
        if not (1 <= self.min_limit <= self.max_limit) or not (0 < self.decrease < 1) or self.increase <= 0:
            raise ValueError("need 1 <= min_limit <= max_limit, 0 < decrease < 1 and increase > 0")


@dataclass(frozen=True)
class AimdState:
    limit: float
    baseline_s: float | None = None  # smoothed latency of healthy answers
    last_decrease_at: float = float("-inf")

    @property
    def slots(self) -> int:
        """Requests that may be in flight now."""
        return max(1, int(self.limit))


def initial_state(config: AimdConfig) -> AimdState:
    """A new deployment starts at its ceiling: limits come down only when the provider says so."""
    return AimdState(limit=config.max_limit)


def cooldown_s(state: AimdState, config: AimdConfig) -> float:
    """At most one decrease per round trip (the baseline latency), and not more often than the floor."""
    return max(config.min_cooldown_s, state.baseline_s or 0.0)


def observe(state: AimdState, config: AimdConfig, *, outcome: Outcome, latency_s: float | None,
            now: float) -> AimdState:
    """The state after one answer. `outcome`: `ok` (a healthy answer after `latency_s`),
    `throttled` (429), `overloaded` (timeout, 5xx, connection lost), `neutral` (says nothing about load)."""
    if outcome == "neutral":
        return state
    slow = (outcome == "ok" and latency_s is not None and state.baseline_s is not None
            and latency_s > config.slow_factor * state.baseline_s)
    baseline = state.baseline_s
    if outcome == "ok" and latency_s is not None and latency_s >= 0:
        baseline = latency_s if baseline is None else baseline + config.baseline_alpha * (latency_s - baseline)
    if outcome in ("throttled", "overloaded") or slow:
        if now - state.last_decrease_at < cooldown_s(state, config):
            return replace(state, baseline_s=baseline)
        return AimdState(limit=max(config.min_limit, state.limit * config.decrease), baseline_s=baseline,
                         last_decrease_at=now)
    grown = min(config.max_limit, state.limit + config.increase / max(state.limit, 1.0))
    return replace(state, limit=max(config.min_limit, grown), baseline_s=baseline)


def within(state: AimdState, config: AimdConfig) -> AimdState:
    """`state` held to `config`'s bounds (another deployment's settings may have stored wider ones)."""
    return replace(state, limit=min(config.max_limit, max(config.min_limit, state.limit)))
