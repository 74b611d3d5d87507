"""The local Stable Diffusion XL backend (diffusers + torch), metered in GPU seconds.

One pipeline per process (see `diffusers_pipelines`), one image at a time per device. Every
denoising step of the base and the refiner reaches `callback_on_step_end`, which

- stops the loop when the run is terminated, by raising: the VAE decode is skipped and the
  generator releases the reservation;
- stops an image that runs past `max_render_seconds` (billed for the seconds it used);
- reports a `StepProgress` whose total comes from the pipeline's own count of timesteps (a
  second-order scheduler calls back more often than `num_inference_steps`).

The callback reads one clock and calls the progress callback, which must not block (the hub's
publisher only enqueues); it never touches the tensors, so it adds no device synchronisation.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

from asset_pipeline.errors import ConfigurationError, PaidFailure, ProviderError, RenderCancelled
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.diffusers_options import DiffusersOptions, checked_model_dir
from asset_pipeline.generation.diffusers_pipelines import LoadedPipelines, free_device_memory, load_pipelines
from asset_pipeline.generation.progress import ProgressClock, planned_stages
from asset_pipeline.generation.request import GenerationRequest


class _RanOver(Exception):
    """Raised from the step callback when an image passes `max_render_seconds`."""


class DiffusersBackend(ImageBackend):
    name = "diffusers"
    # Metered like a paid provider: GPU seconds x `gpu_hour_usd` are reserved and charged through
    # the ledger and its caps (at 0 USD for an owned GPU, still with the attempt and audit trail).
    is_paid = True

    def __init__(self, options: DiffusersOptions):
        self.options = options
        self.base_dir = checked_model_dir(options.model_dir, variable="ASSET_PIPELINE_DIFFUSERS_MODEL")
        self.refiner_dir = (
            checked_model_dir(options.refiner_dir, variable="ASSET_PIPELINE_DIFFUSERS_REFINER")
            if options.refiner_dir else None
        )

    @property
    def default_model(self) -> str:
        """Names the pixels' origin for the request hash: base directory, refiner and split."""
        name = f"sdxl:{self.base_dir.name}"
        if self.refiner_dir is not None:
            name += f"+refiner:{self.refiner_dir.name}@{self.options.refiner_split:g}"
        return name

    def cost_usd(self, seconds: float) -> float:
        return seconds * self.options.gpu_hour_usd / 3600.0

    def reservation_usd(self, model: str) -> float:
        return self.cost_usd(self.options.max_render_seconds)

    def check_models(self, models: list[str]) -> None:
        others = sorted({model for model in models if model != self.default_model})
        if others:
            raise ConfigurationError(
                "ASSET_PIPELINE_MODEL",
                f"the diffusers backend runs the pipeline in ASSET_PIPELINE_DIFFUSERS_MODEL ({self.default_model}); "
                f"it cannot use {', '.join(others)} (leave ASSET_PIPELINE_MODEL and the fallback models unset)",
            )

    def pipelines(self) -> LoadedPipelines:
        return load_pipelines(self.options, self.base_dir, self.refiner_dir)

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        if request.model != self.default_model:
            raise ProviderError(request.partition_key, f"model '{request.model}' is not the loaded SDXL pipeline "
                                f"({self.default_model})", status=404)
        pipelines = self.pipelines()
        if not _acquire(pipelines.device_lock, session.cancelled):
            raise RenderCancelled(request.partition_key, "run terminated while waiting for the device")
        started = time.perf_counter()
        try:
            png = self._generate(request, session, pipelines, started)
        except RenderCancelled:
            free_device_memory()
            raise
        except _RanOver:
            free_device_memory()
            raise PaidFailure(request.partition_key, f"stopped: ran over {self.options.max_render_seconds:g} s",
                              billed_usd=self.cost_usd(time.perf_counter() - started), prediction_id=None) from None
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            free_device_memory()
            raise PaidFailure(
                request.partition_key,
                f"{pipelines.placement.device} out of memory at {request.width}x{request.height}, {request.steps} steps",
                billed_usd=self.cost_usd(time.perf_counter() - started), prediction_id=None,
            ) from None
        finally:
            pipelines.device_lock.release()
        return RenderedImage(png=png, model=request.model, cost_usd=self.cost_usd(time.perf_counter() - started))

    def _generate(self, request: GenerationRequest, session: RenderSession, pipelines: LoadedPipelines,
                  started: float) -> bytes:
        split = self.options.refiner_split if pipelines.refiner is not None else None
        clock = ProgressClock(planned_stages(request.steps, split), started_at=started)
        deadline = started + self.options.max_render_seconds
        common: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
        }
        # The pipelines run under their own `torch.no_grad()`.
        base = pipelines.base(
            **common, width=request.width, height=request.height, denoising_end=split,
            output_type="latent" if split else "pil", generator=_seeded(request.seed),
            callback_on_step_end=_step_callback("base", request, session, clock, deadline),
        )
        image = base.images[0]
        if split is not None and pipelines.refiner is not None:
            image = pipelines.refiner(
                **common, image=base.images, denoising_start=split, generator=_seeded(request.seed),
                callback_on_step_end=_step_callback("refiner", request, session, clock, deadline),
            ).images[0]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def _step_callback(stage: str, request: GenerationRequest, session: RenderSession, clock: ProgressClock,
                   deadline: float):
    def on_step_end(pipeline: Any, index: int, timestep: Any, callback_kwargs: dict) -> dict:
        if session.cancelled.is_set():
            raise RenderCancelled(request.partition_key,
                                  f"run terminated at {stage} step {index + 1}; the image was not decoded")
        now = time.perf_counter()
        if now > deadline:
            raise _RanOver()
        if session.on_progress is not None:
            progress = clock.step(stage, index=index, total=pipeline.num_timesteps, now=now)
            try:
                session.on_progress(progress)
            except Exception:  # noqa: BLE001 - progress is best-effort and must never fail an image
                pass
        return callback_kwargs

    return on_step_end


def _seeded(seed: int) -> Any:
    """A CPU generator: the same seed gives the same initial noise on every device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def _acquire(lock: threading.Lock, cancelled: threading.Event) -> bool:
    while not lock.acquire(timeout=0.25):
        if cancelled.is_set():
            return False
    return True


def _is_out_of_memory(exc: Exception) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
