"""Per-image progress: what a backend reports while it works, and the ETA arithmetic. Pure logic.

A backend calls `ProgressClock.step` once per unit of work (a denoising step, a poll of a
provider's logs) with the time it read; the clock turns that into a `StepProgress` whose overall
percentage and ETA span every stage of the image (base, then refiner), using the step rate
measured so far. Nothing here touches a device, a socket or a file, so a callback built on it
costs microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepProgress:
    """One progress report; the field names are the hub's progress-message fields."""

    stage: str
    current_step: int
    total_steps: int
    percentage: float
    elapsed_s: float
    eta_s: float | None
    message: str = ""


ProgressCallback = Callable[[StepProgress], None]


class ProgressClock:
    """Overall percentage and ETA across stages from per-stage step counts and the measured rate.

    `planned` is the expected steps of each stage in order; a stage's real total (known only when
    it starts: second-order schedulers run more steps than asked) replaces its estimate.
    """

    def __init__(self, planned: list[tuple[str, int]], *, started_at: float):
        self._order = [stage for stage, _ in planned]
        self._totals = dict(planned)
        self._started_at = started_at

    def restart(self, started_at: float) -> None:
        """The work began at `started_at` (a job that waited in a queue: the wait is not its pace)."""
        self._started_at = started_at

    def step(self, stage: str, *, index: int, total: int, now: float) -> StepProgress:
        """Progress after step `index` (0-based) of `total` in `stage` finished at time `now`."""
        if stage not in self._totals:
            self._order.append(stage)
        self._totals[stage] = total
        position = self._order.index(stage)
        done = sum(self._totals[s] for s in self._order[:position]) + index + 1
        overall = sum(self._totals.values())
        elapsed = max(0.0, now - self._started_at)
        eta = elapsed / done * (overall - done) if done else None
        return StepProgress(
            stage=stage, current_step=index + 1, total_steps=total,
            percentage=round(100.0 * done / overall, 2) if overall else 100.0,
            elapsed_s=round(elapsed, 4), eta_s=None if eta is None else round(eta, 4),
        )


def planned_stages(steps: int, refiner_split: float | None) -> list[tuple[str, int]]:
    """Expected steps per stage for an SDXL image: all on the base, or split with the refiner."""
    if refiner_split is None:
        return [("base", steps)]
    base = max(1, min(steps, round(steps * refiner_split)))
    return [("base", base), ("refiner", max(1, steps - base))]
