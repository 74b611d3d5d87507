"""One partition's progress messages for the hub: pending, generating (with steps), then an outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asset_pipeline.generation.progress import StepProgress
from asset_pipeline.progress.messages import ProgressEvent, ProgressStatus

Publish = Callable[[ProgressEvent], None]


def no_publish(event: ProgressEvent) -> None:
    """The default when no hub is configured."""


@dataclass
class PartitionProgress:
    publish: Publish
    run_id: str
    partition_key: str
    started: float = field(default_factory=time.perf_counter)

    def status(self, status: ProgressStatus, *, message: str = "", cost_usd: float | None = None,
               path: str | None = None) -> None:
        done = status in ("completed", "cached")
        self._send(status=status, message=message[:2000], cost_usd=cost_usd, path=path,
                   percentage=100.0 if done else 0.0 if status in ("pending", "generating") else None,
                   elapsed_s=round(time.perf_counter() - self.started, 4) if status != "pending" else None)

    def step(self, progress: StepProgress) -> None:
        self._send(status="generating", stage=progress.stage, current_step=progress.current_step,
                   total_steps=progress.total_steps, percentage=min(100.0, max(0.0, progress.percentage)),
                   elapsed_s=round(time.perf_counter() - self.started, 4), eta_s=progress.eta_s,
                   message=progress.message)

    def _send(self, **fields) -> None:
        try:
            self.publish(ProgressEvent(run_id=self.run_id, partition_key=self.partition_key, **fields))
        except Exception:  # noqa: BLE001 - progress is best-effort and must never fail an image
            pass


def with_concurrency_limit(publish: Publish, limit: Callable[[], int | None]) -> Publish:
    """Issue 16: every progress message carries the provider's shared in-flight limit as last seen."""

    def publish_with_limit(event: ProgressEvent) -> None:
        current = limit()
        publish(event if current is None else event.model_copy(update={"concurrency_limit": current}))

    return publish_with_limit
