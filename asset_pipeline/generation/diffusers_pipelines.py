"""Load local SDXL pipelines once per process and hand every caller the same copy.

A run generates many partitions from a thread pool; each thread asks for the pipeline and all of
them get the one loaded under `_LOADING`, so the run's concurrency never puts two copies of the
model on one GPU. Each device also has one lock: images take turns on it (a second image on the
same GPU would only share its compute and double its memory).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.diffusers_options import DiffusersOptions, Placement, choose_placement


@dataclass(frozen=True)
class LoadedPipelines:
    base: Any
    refiner: Any | None
    placement: Placement
    device_lock: threading.Lock = field(compare=False)


_LOADING = threading.Lock()
_LOADED: dict[tuple, LoadedPipelines] = {}
_DEVICE_LOCKS: dict[str, threading.Lock] = {}


def machine_placement(options: DiffusersOptions) -> Placement:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return choose_placement(options, cuda=cuda, mps=mps, bf16=cuda and torch.cuda.is_bf16_supported())


def load_pipelines(options: DiffusersOptions, base_dir: Path, refiner_dir: Path | None) -> LoadedPipelines:
    """The process's pipelines for these directories and options, loaded on first use."""
    placement = machine_placement(options)
    key = (str(base_dir), str(refiner_dir), placement, options.attention_slicing, options.vae_tiling,
           options.cpu_offload, options.watermark)
    with _LOADING:
        if key not in _LOADED:
            base = _load(base_dir, "ASSET_PIPELINE_DIFFUSERS_MODEL", options, placement, refiner=False)
            refiner = None
            if refiner_dir is not None:
                # The SDXL refiner shares the base's second text encoder and VAE: load them once.
                refiner = _load(refiner_dir, "ASSET_PIPELINE_DIFFUSERS_REFINER", options, placement, refiner=True,
                                text_encoder_2=base.text_encoder_2, vae=base.vae)
            lock = _DEVICE_LOCKS.setdefault(placement.device, threading.Lock())
            _LOADED[key] = LoadedPipelines(base, refiner, placement, lock)
        return _LOADED[key]


def unload_all() -> None:
    """Drop every loaded pipeline and return their device memory (tests, benchmarks)."""
    with _LOADING:
        _LOADED.clear()
    free_device_memory()


def free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.empty_cache()


def _load(directory: Path, variable: str, options: DiffusersOptions, placement: Placement, *, refiner: bool,
          **shared: Any) -> Any:
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    pipeline_class = StableDiffusionXLImg2ImgPipeline if refiner else StableDiffusionXLPipeline
    try:
        pipeline = pipeline_class.from_pretrained(
            directory, dtype=getattr(torch, placement.dtype), local_files_only=True,
            add_watermarker=options.watermark, **shared,
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        detail = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
        raise ConfigurationError(variable, f"cannot load an SDXL pipeline from '{directory}': {detail}") from None
    if options.cpu_offload:
        pipeline.enable_model_cpu_offload(device=placement.device)
    else:
        pipeline.to(placement.device)
    if options.attention_slicing:
        pipeline.enable_attention_slicing()
    if options.vae_tiling:
        pipeline.vae.enable_tiling()
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
