"""The resources as the operator's settings configure them (used by `definitions.py` and the CLI).

Secrets are only ever bound with `dg.EnvVar`, so Dagster stores the variable's name, never the
value: the Replicate token, the hub token and a ledger URL taken from ASSET_PIPELINE_DATABASE_URL
(it may carry a password).
"""

from __future__ import annotations

import os

import dagster as dg

from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.resources.prompt_writer import PromptWriterResource
from asset_pipeline.settings import PipelineSettings

DATABASE_URL_VARIABLE = "ASSET_PIPELINE_DATABASE_URL"


def progress_hub(settings: PipelineSettings) -> ProgressHub:
    """The hub publisher; the token only ever as `dg.EnvVar`, and only when it is set."""
    token = dg.EnvVar("ASSET_PIPELINE_HUB_TOKEN") if os.environ.get("ASSET_PIPELINE_HUB_TOKEN") else None
    return ProgressHub(url=settings.hub_url, token=token, enabled=settings.hub_enabled)


def ledger_url(settings: PipelineSettings) -> str:
    """The ledger URL; bound as `dg.EnvVar` when it comes from ASSET_PIPELINE_DATABASE_URL, so its
    password (if any) is never stored in the job snapshot or run storage, only the variable's name."""
    from_environment = os.environ.get(DATABASE_URL_VARIABLE)
    if settings.database_url and settings.database_url == from_environment:
        return dg.EnvVar(DATABASE_URL_VARIABLE)
    return settings.ledger_url


def image_generator(settings: PipelineSettings) -> ImageGenerator:
    """The generator resource from the settings; the Replicate token only ever as `dg.EnvVar`."""
    token = dg.EnvVar("REPLICATE_API_TOKEN") if settings.backend == "replicate" else None
    return ImageGenerator(
        backend=settings.backend,
        model=settings.model,
        max_concurrency=settings.max_concurrency,
        database_url=ledger_url(settings),
        budget_total_usd=settings.budget_total_usd,
        budget_daily_usd=settings.budget_daily_usd,
        budget_per_run_usd=settings.budget_per_run_usd,
        poll_interval_s=settings.poll_interval_s,
        requests_per_second=settings.requests_per_second,
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        fallback_models=[model.strip() for model in settings.fallback_models.split(",") if model.strip()],
        fallback_images=settings.fallback_images,
        fallback_image_dir=str(settings.fallback_image_dir) if settings.fallback_image_dir else None,
        replicate_api_token=token,
        delivery_hosts=settings.delivery_hosts,
        max_download_mb=settings.max_download_mb,
        download_timeout_s=settings.download_timeout_s,
        max_output_megapixels=settings.max_output_megapixels,
        max_outage_s=settings.max_outage_s,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        breaker_minimum_calls=settings.breaker_minimum_calls,
        diffusers=DiffusersOptions(
            model_dir=settings.diffusers_model,
            refiner_dir=settings.diffusers_refiner,
            refiner_split=settings.diffusers_refiner_split,
            device=settings.diffusers_device,
            dtype=settings.diffusers_dtype,
            attention_slicing=settings.diffusers_attention_slicing,
            vae_tiling=settings.diffusers_vae_tiling,
            cpu_offload=settings.diffusers_cpu_offload,
            watermark=settings.diffusers_watermark,
            gpu_hour_usd=settings.gpu_hour_usd,
            max_render_seconds=settings.diffusers_max_render_seconds,
        ),
    )


def llm_api_key_variable() -> str | None:
    """ASSET_PIPELINE_LLM_API_KEY when set, else OPENAI_API_KEY when set (the official client's own name)."""
    for variable in ("ASSET_PIPELINE_LLM_API_KEY", "OPENAI_API_KEY"):
        if os.environ.get(variable):
            return variable
    return None


def prompt_writer(settings: PipelineSettings) -> PromptWriterResource:
    """The prompt writer from the settings; the LLM key only ever as `dg.EnvVar`, and only for `llm`."""
    variable = llm_api_key_variable() if settings.prompts == "llm" else None
    return PromptWriterResource(
        expander=settings.prompts, base_url=settings.llm_base_url, model=settings.llm_model,
        api_key=dg.EnvVar(variable) if variable else None, temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens, timeout_s=settings.llm_timeout_s, max_attempts=settings.llm_max_attempts,
        backoff_base_s=settings.backoff_base_s, max_concurrency=settings.prompts_max_concurrency,
        prices_json=settings.llm_prices,
    )
