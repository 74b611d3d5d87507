"""The diffusers backend on a tiny offline SDXL pipeline, on the CPU, through the generator resource.

Checks per-step progress (base and refiner, second-order schedulers), seeds, GPU-time metering
against the ledger, cancellation mid-denoising, and one shared pipeline under concurrency.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import BudgetExhaustedError, GenerationError
from asset_pipeline.generation.diffusers_pipelines import load_pipelines
from asset_pipeline.generation.progress import StepProgress
from asset_pipeline.imaging.inspect import inspect_image
from asset_pipeline.ledger.database import history_rows
from asset_pipeline.ledger.schema import budget_entries
from asset_pipeline.resources.generator_config import DiffusersConfig
from asset_pipeline.resources.image_generator import ImageGenerator


def spec(seed: int = 7, *, steps: int = 10, width: int = 64, height: int = 96, key: str = "hero-1") -> ImageSpec:
    return ImageSpec.model_validate({
        "id": key, "category": "hero", "prompt": "a family on a porch, golden hour", "negative_prompt": "blurry",
        "width": width, "height": height, "seed": seed, "steps": steps, "guidance": 5.0,
    })


def generator(tmp_path: Path, model_dir: Path, refiner_dir: Path | None = None, **options) -> ImageGenerator:
    return ImageGenerator(
        backend="diffusers", database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        diffusers=DiffusersConfig(model_dir=str(model_dir), refiner_dir=str(refiner_dir) if refiner_dir else None,
                                   **options),
    )


def test_progress_sees_every_base_and_refiner_step_in_order(tmp_path: Path, tiny_sdxl) -> None:
    gen = generator(tmp_path, tiny_sdxl.base, tiny_sdxl.refiner, refiner_split=0.8)
    seen: list[StepProgress] = []
    pending = gen.metered.generate(gen.request_for(spec()), on_progress=seen.append)
    facts = inspect_image(pending.rendered.png)
    assert (facts.format, facts.width, facts.height) == ("PNG", 64, 96)
    assert [(p.stage, p.current_step, p.total_steps) for p in seen] == (
        [("base", i, 8) for i in range(1, 9)] + [("refiner", i, 2) for i in range(1, 3)]
    )
    assert [p.percentage for p in seen] == sorted(p.percentage for p in seen) and seen[-1].percentage == 100.0
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in seen) and seen[-1].eta_s == 0.0
    assert pending.request.model == "sdxl:base+refiner:refiner@0.8"


def test_totals_come_from_the_scheduler_not_the_requested_steps(tmp_path: Path, tiny_sdxl) -> None:
    gen = generator(tmp_path, tiny_sdxl.heun_base)
    seen: list[StepProgress] = []
    gen.metered.generate(gen.request_for(spec(steps=5)), on_progress=seen.append)
    # Heun is second order: it calls back for 2 * 5 - 1 timesteps.
    assert [p.current_step for p in seen] == list(range(1, 10))
    assert {p.total_steps for p in seen} == {9}


def test_the_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, tiny_sdxl) -> None:
    backend = generator(tmp_path, tiny_sdxl.base, tiny_sdxl.refiner).active_backend
    from asset_pipeline.generation.backend import RenderSession
    from asset_pipeline.generation.request import build_request

    def render(seed: int) -> bytes:
        request = build_request(spec(seed), backend="diffusers", model=backend.default_model)
        return backend.render(request, RenderSession()).png

    first = render(7)
    assert render(7) == first
    assert render(8) != first


def test_gpu_seconds_are_reserved_charged_and_capped(tmp_path: Path, tiny_sdxl) -> None:
    gen = generator(tmp_path, tiny_sdxl.base, gpu_hour_usd=36.0, max_render_seconds=100)
    pending = gen.metered.generate(gen.request_for(spec()), run_id="r1")
    assert pending.reservation is not None and pending.reservation.amount_usd == pytest.approx(1.0)  # 100 s at 1 c/s
    assert 0 < pending.rendered.cost_usd < 0.2
    gen.metered.settle(pending, sha256="0" * 64)
    kinds = [(row["kind"], row["amount_micros"]) for row in history_rows(gen.ledger.engine, budget_entries)]
    assert kinds == [("reservation", 1_000_000), ("charge", round(pending.rendered.cost_usd * 1e6))]
    capped = generator(tmp_path, tiny_sdxl.base, gpu_hour_usd=36.0, max_render_seconds=100)
    capped = ImageGenerator(**{**capped.model_dump(), "budget_per_run_usd": 0.5})
    with pytest.raises(BudgetExhaustedError):
        capped.metered.generate(capped.request_for(spec()), run_id="r2")


def test_cancelling_mid_denoising_skips_the_decode_and_releases_the_reservation(tmp_path: Path, tiny_sdxl) -> None:
    gen = generator(tmp_path, tiny_sdxl.base, gpu_hour_usd=36.0, max_render_seconds=100)
    pipelines = load_pipelines(gen.diffusers, gen.active_backend.base_dir, None)
    decodes = []
    real_decode = pipelines.base.vae.decode
    pipelines.base.vae.decode = lambda *a, **k: decodes.append(1) or real_decode(*a, **k)
    cancelled = threading.Event()
    steps: list[int] = []

    def cancel_at_step_three(progress: StepProgress) -> None:
        steps.append(progress.current_step)
        if progress.current_step == 3:
            cancelled.set()

    with pytest.raises(GenerationError, match="run terminated at base step 4; the image was not decoded"):
        gen.metered.generate(gen.request_for(spec(steps=30)), run_id="r1", cancelled=cancelled, on_progress=cancel_at_step_three)
    assert steps == [1, 2, 3] and decodes == []
    kinds = [row["kind"] for row in history_rows(gen.ledger.engine, budget_entries)]
    assert kinds == ["reservation", "release"]
    status = gen.ledger.status(gen.caps)
    assert status.open_reservations == 0 and status.spent_total_usd == 0


def test_concurrent_partitions_share_one_pipeline_and_take_turns(tmp_path: Path, tiny_sdxl) -> None:
    gen = generator(tmp_path, tiny_sdxl.base)
    order: list[int] = []

    def one(index: int) -> bytes:
        request = gen.request_for(spec(seed=index, key=f"img-{index}"))
        return gen.metered.generate(request, on_progress=lambda progress: order.append(index)).rendered.png

    with ThreadPoolExecutor(4) as pool:
        images = list(pool.map(one, range(4)))
    assert len(set(images)) == 4
    # One image at a time on the device: each image's steps form one unbroken block.
    blocks = [index for position, index in enumerate(order) if position == 0 or order[position - 1] != index]
    assert sorted(blocks) == [0, 1, 2, 3] and len(order) == 40
    backend = gen.active_backend
    shared = load_pipelines(gen.diffusers, backend.base_dir, None)
    assert shared is load_pipelines(gen.diffusers, backend.base_dir, None) and shared.placement.device == "cpu"
