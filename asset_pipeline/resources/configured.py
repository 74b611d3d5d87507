"""The resources as the operator's settings configure them (used by `definitions.py` and the CLI).

Secrets are only ever bound with `dg.EnvVar`, so Dagster stores the variable's name, never the
value: the Replicate token, the hub token and a ledger URL taken from ASSET_PIPELINE_DATABASE_URL
(it may carry a password).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

from asset_pipeline.resources.comfyui_options import ComfyUIOptions
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.ledger import LedgerResource
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


def from_the_settings(resource: type[dg.ConfigurableResource], settings: PipelineSettings) -> dict[str, Any]:
    """The resource's fields that are settings of the same name (scalars and config blocks), taken
    from `settings`: each setting is declared once, so nothing is copied field by field."""
    values = {name: getattr(settings, name) for name in resource.model_fields if name in type(settings).model_fields}
    # Blocks go over as plain dicts: the resource's field is the block's `dg.Config` twin
    # (e.g. `DiffusersConfig` for the core's `DiffusersOptions`), which validates them again.
    return {name: str(value) if isinstance(value, Path) else value.model_dump() if isinstance(value, BaseModel) else value
            for name, value in values.items()}


def image_generator(settings: PipelineSettings) -> ImageGenerator:
    """The generator resource from the settings; the Replicate token only ever as `dg.EnvVar`."""
    token = dg.EnvVar("REPLICATE_API_TOKEN") if settings.backend == "replicate" else None
    comfyui = ComfyUIOptions(urls=settings.comfyui_url, workflow=str(settings.comfyui_workflow) if settings.comfyui_workflow else None,
                             gpu_hour_usd=settings.diffusers.gpu_hour_usd, max_job_seconds=settings.comfyui_max_job_seconds,
                             queue_depth=settings.comfyui_queue_depth)
    return ImageGenerator(**{**from_the_settings(ImageGenerator, settings), "database_url": ledger_url(settings),
                             "replicate_api_token": token, "comfyui": comfyui,
                             "redis_url": redis_url(settings)})


def ledger(settings: PipelineSettings) -> LedgerResource:
    """The ledger's readers (spend report, sensors, schedules); its URL as `dg.EnvVar` when it is a secret."""
    return LedgerResource(**{**from_the_settings(LedgerResource, settings), "database_url": ledger_url(settings)})


def redis_url(settings: PipelineSettings) -> str | None:
    """A Redis URL may hold a password: bound as `dg.EnvVar` when it comes from the environment."""
    if settings.redis_url and settings.redis_url == os.environ.get("ASSET_PIPELINE_REDIS_URL"):
        return dg.EnvVar("ASSET_PIPELINE_REDIS_URL")
    return settings.redis_url


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
        backoff_base_s=settings.retries.backoff_base_s, max_concurrency=settings.prompts_max_concurrency,
        prices_json=settings.llm_prices,
    )
