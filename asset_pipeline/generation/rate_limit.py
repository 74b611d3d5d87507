"""A thread-safe token bucket: at most `rate` provider requests per second, bursts of `burst`.

Hand-written because it is a dozen lines and must be cancellable by the run's termination event;
one run's rate. The rate across every run and process is `limits/shared.py`'s (a GCRA in the
ledger database or Redis), which the remote backends are held to as well by default.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, *, rate: float, burst: int = 1):
        self._rate, self._capacity = rate, float(max(1, burst))
        self._tokens, self._updated = self._capacity, time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Take one token, waiting as needed; False if `cancelled` was set while waiting."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self._rate
            if cancelled is not None:
                if cancelled.wait(wait):
                    return False
            else:
                time.sleep(wait)
