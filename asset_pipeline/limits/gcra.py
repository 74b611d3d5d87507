"""The generic cell rate algorithm (GCRA), as a reservation: the pure arithmetic of a shared rate.

One number of state, the theoretical arrival time (`tat`), is all a rate of `1 / interval` with
bursts of `burst` needs; so it fits one database row or one Redis key updated atomically, and every
process of a deployment draws from the same rate. Each caller reserves the next free instant and
sleeps until it (no polling): the same answer `TokenBucket` gives one process, across many.
"""

from __future__ import annotations


def reserve(tat: float, now: float, *, interval: float, burst: int = 1) -> tuple[float, float]:
    """Reserve one request at or after `now`; return `(new_tat, wait_s)`.

    `wait_s` is how long the caller must wait before sending (0 when the burst allows it now).
    """
    if interval <= 0:
        return tat, 0.0
    allowed_at = max(now, tat - (max(1, burst) - 1) * interval)
    return max(tat, now) + interval, allowed_at - now
