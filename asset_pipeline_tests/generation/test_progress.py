"""ProgressClock: overall percentage and ETA across stages, from step counts and the measured rate."""

from __future__ import annotations

import pytest

from asset_pipeline.generation.progress import ProgressClock, planned_stages


def test_single_stage_percentage_and_eta_follow_the_step_rate() -> None:
    clock = ProgressClock(planned_stages(10, None), started_at=100.0)
    first = clock.step("base", index=0, total=10, now=100.5)
    assert (first.current_step, first.total_steps, first.percentage) == (1, 10, 10.0)
    assert first.eta_s == pytest.approx(4.5)  # 0.5 s per step, nine to go
    last = clock.step("base", index=9, total=10, now=105.0)
    assert last.percentage == 100.0 and last.eta_s == 0.0 and last.elapsed_s == 5.0


def test_refiner_steps_count_after_the_base_and_real_totals_replace_the_plan() -> None:
    assert planned_stages(30, 0.8) == [("base", 24), ("refiner", 6)]
    clock = ProgressClock(planned_stages(10, 0.8), started_at=0.0)
    base = clock.step("base", index=7, total=8, now=8.0)
    assert base.percentage == 80.0 and base.eta_s == pytest.approx(2.0)
    # A second-order scheduler runs 3 callbacks for the refiner's share, not 2.
    refiner = clock.step("refiner", index=0, total=3, now=9.0)
    assert (refiner.stage, refiner.current_step, refiner.total_steps) == ("refiner", 1, 3)
    assert refiner.percentage == pytest.approx(100 * 9 / 11, abs=0.01)
    assert refiner.eta_s == pytest.approx(2.0)


def test_an_unplanned_stage_is_appended() -> None:
    clock = ProgressClock([("base", 2)], started_at=0.0)
    clock.step("base", index=1, total=2, now=1.0)
    extra = clock.step("upscale", index=0, total=2, now=2.0)
    assert extra.percentage == 75.0
