"""Shared provider limits in Redis (ASSET_PIPELINE_REDIS_URL), through the maintained `redis` client.

The rate and the in-flight leases are Lua scripts, which Redis runs atomically; the rate uses the
server's own clock (`TIME`), so machines with skewed clocks still share one rate. The adaptive limit
is a hash updated with WATCH/MULTI (optimistic; retried on a conflicting write) so its arithmetic
stays in Python, in `aimd.py`, the same for both stores. Keys live under `prefix`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

import redis

from asset_pipeline.limits.aimd import AimdState

_RESERVE_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local allowed = math.max(now, tat - (burst - 1) * interval)
local new_tat = math.max(tat, now) + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 60000)
return tostring(allowed - now)
"""
_TRY_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return 1
"""


class RedisLimitStore:
    def __init__(self, url: str, *, prefix: str = "asset_pipeline:limits:"):
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self.prefix = prefix
        self._reserve = self.client.register_script(_RESERVE_RATE)
        self._try_slot = self.client.register_script(_TRY_SLOT)

    def reserve_rate(self, key: str, *, interval: float, burst: int) -> float:
        return float(self._reserve(keys=[f"{self.prefix}{key}:rate"], args=[interval, max(1, burst)]))

    def try_slot(self, key: str, *, holder: str, lease_s: float, initial: AimdState) -> tuple[bool, AimdState]:
        state = self.read_limit(key) or initial
        now = time.time()
        taken = self._try_slot(keys=[f"{self.prefix}{key}:slots"], args=[now, state.slots, now + lease_s, holder])
        return bool(int(taken)), state

    def renew_slots(self, key: str, *, holders: list[str], lease_s: float) -> None:
        if holders:  # XX: only leases still there (a released one is not brought back)
            self.client.zadd(f"{self.prefix}{key}:slots", {holder: time.time() + lease_s for holder in holders}, xx=True)

    def release_slot(self, key: str, *, holder: str) -> None:
        self.client.zrem(f"{self.prefix}{key}:slots", holder)

    def update_limit(self, key: str, change: Callable[[AimdState], AimdState], *, initial: AimdState) -> AimdState:
        name = f"{self.prefix}{key}:limit"
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    state = change(_state(cast(dict, pipe.hgetall(name))) or initial)
                    pipe.multi()
                    pipe.hset(name, mapping={"limit": state.limit, "baseline_s": "" if state.baseline_s is None
                                             else state.baseline_s, "last_decrease_at": state.last_decrease_at})
                    pipe.execute()
                    return state
                except redis.WatchError:
                    continue

    def read_limit(self, key: str) -> AimdState | None:
        return _state(cast(dict, self.client.hgetall(f"{self.prefix}{key}:limit")))

    def close(self) -> None:
        self.client.close()


def _state(fields: dict) -> AimdState | None:
    if not fields:
        return None
    values = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
              for k, v in fields.items()}
    try:
        return AimdState(limit=float(values["limit"]),
                         baseline_s=float(values["baseline_s"]) if values.get("baseline_s") else None,
                         last_decrease_at=float(values.get("last_decrease_at") or "-inf"))
    except (KeyError, ValueError):
        return None  # a damaged entry: start again from the configured ceiling
