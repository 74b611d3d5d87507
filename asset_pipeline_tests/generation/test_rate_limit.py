"""Token bucket: bursts up to its size, then the configured rate, and cancellable waits."""

from __future__ import annotations

import threading
import time

from asset_pipeline.generation.rate_limit import TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=20, burst=5)
    started = time.monotonic()
    for _ in range(15):
        assert bucket.acquire()
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3.0  # 5 at once, then 10 more at 20/s (never faster)


def test_a_cancelled_wait_returns_false() -> None:
    bucket = TokenBucket(rate=0.01, burst=1)
    assert bucket.acquire()
    cancelled = threading.Event()
    threading.Timer(0.1, cancelled.set).start()
    assert bucket.acquire(cancelled) is False
