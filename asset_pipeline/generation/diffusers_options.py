"""Settings of the local Stable Diffusion XL backend, and the pure choice of device and dtype."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from asset_pipeline.errors import ConfigurationError

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["auto", "float16", "bfloat16", "float32"]

# owner/name with no path separator beyond the one slash: what a Hugging Face hub id looks like.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class DiffusersOptions(BaseModel):
    """Where the SDXL pipeline lives and how to run it (ASSET_PIPELINE_DIFFUSERS_*).

    Declared once: the environment settings nest this block (ASSET_PIPELINE_DIFFUSERS_*, and
    ASSET_PIPELINE_GPU_HOUR_USD), and the generator resource takes it as its `diffusers` config
    (`resources/generator_config.py::DiffusersConfig`, the same fields with `dg.Config` mixed in).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: str | None = Field(default_factory=lambda: None, description="Local SDXL base directory (ASSET_PIPELINE_DIFFUSERS_MODEL); never downloaded."
    )
    refiner_dir: str | None = Field(default_factory=lambda: None, description="Optional local SDXL refiner directory (ASSET_PIPELINE_DIFFUSERS_REFINER)."
    )
    refiner_split: float = Field(default_factory=lambda: 0.8, gt=0, lt=1,
        description="Fraction of the noise schedule run by the base before the refiner takes over.",
    )
    device: Device = Field(default_factory=lambda: "auto", description="cuda, mps or cpu; auto picks the best available.")
    dtype: DType = Field(default_factory=lambda: "auto", description="auto: bfloat16/float16 on cuda, float16 on mps, float32 on cpu.")
    attention_slicing: bool = Field(default_factory=lambda: False, description="Slice attention to save memory on small GPUs.")
    vae_tiling: bool = Field(default_factory=lambda: False, description="Decode the VAE in tiles to save memory at large sizes.")
    cpu_offload: bool = Field(default_factory=lambda: False, description="Keep idle sub-models on the CPU (cuda only; slower).")
    watermark: bool = Field(default_factory=lambda: False, description="Apply SDXL's invisible watermark (needs invisible-watermark).")
    gpu_hour_usd: float = Field(default_factory=lambda: 0.0, ge=0, description="Price of one GPU hour, metered against the budget (0 for an owned GPU)."
    )
    max_render_seconds: float = Field(default_factory=lambda: 600.0, gt=0, description="An image taking longer is stopped; the reservation covers this long."
    )


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: str


def choose_placement(options: DiffusersOptions, *, cuda: bool, mps: bool, bf16: bool) -> Placement:
    """The device and dtype to run on, given what the machine offers; overrides are checked."""
    device = options.device
    if device == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
    elif (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ConfigurationError("ASSET_PIPELINE_DIFFUSERS_DEVICE", f"'{device}' is not available on this machine")
    if options.cpu_offload and device != "cuda":
        raise ConfigurationError("ASSET_PIPELINE_DIFFUSERS_CPU_OFFLOAD", "CPU offload needs a cuda device")
    dtype = options.dtype
    if dtype == "auto":
        dtype = {"cuda": "bfloat16" if bf16 else "float16", "mps": "float16"}.get(device, "float32")
    return Placement(device, dtype)


def checked_model_dir(value: str | None, *, variable: str) -> Path:
    """`value` as an existing diffusers directory, or a `ConfigurationError` saying what is wrong."""
    if not value:
        raise ConfigurationError(variable, "the diffusers backend needs a local SDXL directory")
    path = Path(value).expanduser()
    if not path.exists():
        if _HUB_ID.match(value) and not value.startswith("."):
            raise ConfigurationError(
                variable,
                f"'{value}' looks like a Hugging Face hub id; this backend never downloads: download it "
                "(e.g. `huggingface-cli download` or `save_pretrained`) and point at the local directory",
            )
        raise ConfigurationError(variable, f"directory '{path}' does not exist")
    if not (path / "model_index.json").is_file():
        raise ConfigurationError(variable, f"'{path}' is not a diffusers pipeline directory (no model_index.json)")
    return path.resolve()
