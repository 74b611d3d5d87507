"""Process-wide settings read from `ASSET_PIPELINE_*` environment variables (pydantic-settings).

The operator's environment is the authority: `definitions.py` hands these values to the resources,
whose field defaults also come from here (`from_settings`), so a run config that sets a few fields
keeps every other one at the operator's value. Run config may tighten the caps and tune harmless
knobs, never raise a cap, switch the backend or move the ledger (`resources/run_config_guard.py`).
Secrets are not read here: they are bound with `dg.EnvVar` in `definitions.py` so Dagster never
stores their values.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.ledger.money import MAX_BUDGET_USD
from asset_pipeline.storage.database_url import check_database_url

Backend = Literal["placeholder", "replicate", "diffusers"]


def _default_data_dir() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    base = Path(home) if home else Path.cwd() / ".dagster_home"
    return base / "asset_pipeline_data"


class PipelineSettings(BaseSettings):
    """Environment overrides, each documented in the README's table."""

    model_config = SettingsConfigDict(env_prefix="ASSET_PIPELINE_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="image store root")
    catalog: Path | None = Field(default=None, description="catalog YAML file; None is the bundled one")
    backend: Backend = Field(default="placeholder", description="which backend generates images")
    model: str | None = Field(default=None, description="model reference for the backend")
    partitions_per_run: int | None = Field(
        default=None, ge=1, description="backfill runs of this many partitions; unset: a backfill is one run"
    )
    max_concurrency: int = Field(default=8, ge=1, le=256, description="images generated at once in one run")
    database_url: str | None = Field(default=None, description="ledger database URL; None is ledger.db in the data dir")
    budget_total_usd: float = Field(default=20.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="cap on all spending")
    budget_daily_usd: float = Field(default=10.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="cap per UTC day")
    budget_per_run_usd: float = Field(default=20.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="cap per Dagster run")
    requests_per_second: float = Field(default=10.0, gt=0, description="new predictions per second from one run")
    poll_interval_s: float = Field(default=0.5, gt=0, description="how often a running prediction is polled")
    max_attempts: int = Field(default=6, ge=1, le=20, description="attempts per image, all retry strategies together")
    backoff_base_s: float = Field(default=1.0, ge=0, description="first backoff ceiling for transient errors")
    fallback_models: str = Field(default="", description="comma-separated models to fall back to, in order")
    fallback_images: bool = Field(default=False, description="store a generic per-category image when all else fails")
    fallback_image_dir: Path | None = Field(default=None, description="folder of <category>.png fallback images")
    diffusers_model: str | None = Field(default=None, description="local SDXL base directory")
    diffusers_refiner: str | None = Field(default=None, description="local SDXL refiner directory")
    diffusers_refiner_split: float = Field(default=0.8, gt=0, lt=1, description="share of the schedule run by the base")
    diffusers_device: Literal["auto", "cuda", "mps", "cpu"] = Field(default="auto", description="device to run on")
    diffusers_dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(default="auto", description="weights dtype")
    diffusers_attention_slicing: bool = Field(default=False, description="slice attention (small GPUs)")
    diffusers_vae_tiling: bool = Field(default=False, description="decode the VAE in tiles (large images)")
    diffusers_cpu_offload: bool = Field(default=False, description="offload idle sub-models to the CPU")
    diffusers_watermark: bool = Field(default=False, description="apply SDXL's invisible watermark")
    diffusers_max_render_seconds: float = Field(default=600.0, gt=0, description="stop an image after this long")
    gpu_hour_usd: float = Field(default=0.0, ge=0, description="price of one GPU hour for the diffusers backend")
    hub_url: str = Field(default="http://127.0.0.1:4500", description="where progress is published")
    hub_enabled: bool = Field(default=True, description="publish progress to the hub at all")
    images_cron: str = Field(default="0 3 * * *", description="cron of the images_within_budget schedule")
    summaries_cron: str = Field(default="30 6 * * *", description="cron of the summaries refresh schedule")
    max_outage_s: float = Field(default=600.0, ge=0, description="longest provider outage a run waits out")
    breaker_cooldown_s: float = Field(default=30.0, gt=0, description="how long an open provider circuit stays open")
    breaker_minimum_calls: int = Field(default=20, ge=1, description="calls in the breaker's window before it may open")
    delivery_hosts: str | None = Field(
        default=None, description="comma-separated hosts output files may come from; unset: Replicate's delivery hosts"
    )
    max_download_mb: float = Field(default=50.0, gt=0, le=1024, allow_inf_nan=False, description="largest output file downloaded")
    download_timeout_s: float = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False, description="deadline of one download")
    max_output_megapixels: float = Field(default=40.0, gt=0, le=40, allow_inf_nan=False, description="cap on an output's pixels")

    # --- Prompts from briefs (issue 15): the `prompts` asset's expander and its LLM ---
    prompts: Literal["template", "llm"] = Field(default="template", description="who writes prompts from briefs")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible API base URL; None is OpenAI's")
    llm_model: str = Field(default="gpt-4o-mini", min_length=1, max_length=200, description="LLM that writes prompts")
    llm_temperature: float = Field(default=0.7, ge=0, le=2, description="sampling temperature of the LLM")
    llm_max_tokens: int = Field(default=400, ge=16, le=8192, description="answer limit; reserved in full before a call")
    llm_timeout_s: float = Field(default=60.0, gt=0, le=600, allow_inf_nan=False, description="deadline of one LLM call")
    llm_max_attempts: int = Field(default=4, ge=1, le=10, description="LLM calls per prompt, retries included")
    llm_prices: str | None = Field(default=None, description='JSON {"model": [input, output]} USD per million tokens')
    prompts_max_concurrency: int = Field(default=8, ge=1, le=64, description="prompts written at once in one run")

    @field_validator("llm_prices")
    @classmethod
    def _price_table(cls, value: str | None) -> str | None:
        if value:
            from asset_pipeline.prompting.pricing import parse_price_table

            parse_price_table(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        return check_database_url(value) if value else value

    @property
    def ledger_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"


def load_settings() -> PipelineSettings:
    """Read the environment; a bad value raises `ConfigurationError` naming the variable."""
    try:
        return PipelineSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = "ASSET_PIPELINE_" + str(first["loc"][0]).upper() if first["loc"] else "ASSET_PIPELINE_*"
        raise ConfigurationError(variable, first["msg"].removeprefix("Value error, ")) from None


def from_settings(name: str, convert: Callable[[Any], Any] = lambda value: value) -> Callable[[], Any]:
    """A pydantic `default_factory` reading setting `name` from the environment when a resource is built.

    Resource fields use it instead of a hard-coded default: Dagster then leaves the field out of a
    partial run config, so the field keeps the operator's value instead of a class default.
    """
    return lambda: convert(getattr(load_settings(), name))
