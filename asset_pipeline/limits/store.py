"""What a shared-limits store does; the ledger database (`sql_store.py`) and Redis (`redis_store.py`)
each do it atomically for every process of a deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from asset_pipeline.limits.aimd import AimdState


class LimitStore(Protocol):
    def reserve_rate(self, key: str, *, interval: float, burst: int) -> float:
        """Reserve the next create slot of `key`'s rate; seconds to wait before sending."""

    def try_slot(self, key: str, *, holder: str, lease_s: float, initial: AimdState) -> tuple[bool, AimdState]:
        """Take an in-flight slot for `holder` if fewer than the shared limit are held; the limit's state."""

    def renew_slots(self, key: str, *, holders: list[str], lease_s: float) -> None:
        """Extend the leases of `holders` (still in flight) to `lease_s` from now."""

    def release_slot(self, key: str, *, holder: str) -> None:
        """Give `holder`'s slot back (nothing if it expired or was never taken)."""

    def update_limit(self, key: str, change: Callable[[AimdState], AimdState], *, initial: AimdState) -> AimdState:
        """Apply `change` to the shared limit atomically; the new state."""

    def read_limit(self, key: str) -> AimdState | None:
        """The shared limit now, None before any run used it."""
