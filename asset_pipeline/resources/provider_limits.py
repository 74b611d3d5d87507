"""Config -> the deployment-wide provider limits around a remote backend (issue 16).

With `provider_limits = "deployment"` (the default) every run and process shares one create rate
(`requests_per_second`) and one adaptive in-flight limit (at most `provider_max_concurrency`), kept
in Redis when `redis_url` is set, else in the ledger database every run already shares. With
`"run"` each run keeps its own token bucket, as before. Only remote providers are limited: the
local backends (placeholder, diffusers) have no provider to protect.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from asset_pipeline.generation.backend import ImageBackend
from asset_pipeline.limits.aimd import AimdConfig
from asset_pipeline.limits.limited_backend import LimitedBackend
from asset_pipeline.limits.redis_store import RedisLimitStore
from asset_pipeline.limits.shared import AdaptiveConcurrency, SharedRateLimit
from asset_pipeline.limits.sql_store import SqlLimitStore
from asset_pipeline.limits.store import LimitStore

REMOTE_BACKENDS = frozenset({"replicate", "comfyui"})


def limit_store(*, redis_url: str | None, engine: Callable[[], Engine]) -> LimitStore:
    return RedisLimitStore(redis_url) if redis_url else SqlLimitStore(engine())


def limited(backend: ImageBackend, *, scope: str, store: Callable[[], LimitStore], requests_per_second: float,
            max_concurrency: int, adaptive: bool,
            on_change: Callable[[int], None] | None = None) -> ImageBackend:
    """`backend` held to the deployment's limits, or `backend` itself when they do not apply."""
    if scope != "deployment" or backend.name not in REMOTE_BACKENDS:
        return backend
    shared = store()
    rate = SharedRateLimit(shared, key=backend.name, rate=requests_per_second)
    concurrency = AdaptiveConcurrency(shared, key=backend.name, config=AimdConfig(max_limit=float(max_concurrency)),
                                      on_change=on_change,
                                      adaptive=adaptive)
    return LimitedBackend(backend, rate=rate, concurrency=concurrency)


def concurrency_limit(backend: ImageBackend | None) -> int | None:
    """The adaptive limit as this process last saw it, None for an unlimited backend."""
    return backend.concurrency.last_seen if isinstance(backend, LimitedBackend) else None
