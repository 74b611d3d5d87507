"""The code location: `defs`, built from the catalog and the `ASSET_PIPELINE_*` settings.

Loading fails with one line per problem when the catalog is invalid, naming file, entry and field.
"""

from __future__ import annotations

import os
import warnings

import dagster as dg

from asset_pipeline.assets import build_assets
from asset_pipeline.assets.keys import IMAGE_CATALOG
from asset_pipeline.catalog import load_catalog
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.sensors.failed_images import failed_images_sensor
from asset_pipeline.sensors.run_events_to_hub import run_events_to_hub
from asset_pipeline.sensors.schedules import build_schedules, summaries_job
from asset_pipeline.settings import PipelineSettings, load_settings


def build_defs(settings: PipelineSettings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    catalog_path = str(settings.catalog) if settings.catalog else None
    catalog = load_catalog(catalog_path)
    with warnings.catch_warnings():
        # observable_source_asset, backfill_policy and partitioned check specs are marked beta or
        # preview; we rely on them knowingly (see DESIGN.md) and keep the CLI output clean.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        assets = build_assets(catalog, partitions_per_run=settings.partitions_per_run)
    return dg.Definitions(
        assets=assets,
        sensors=[failed_images_sensor, run_events_to_hub],
        schedules=build_schedules(images_cron=settings.images_cron, summaries_cron=settings.summaries_cron),
        jobs=[
            summaries_job,
            dg.define_asset_job(
                "observe_image_catalog",
                selection=[IMAGE_CATALOG],
                description="Record each catalog entry's spec hash so edited prompts show their images as stale.",
            )
        ],
        resources={
            "catalog_file": CatalogFile(path=catalog_path),
            "image_store": ImageStore(root=str(settings.data_dir)),
            "image_generator": image_generator(settings),
            "progress_hub": progress_hub(settings),
        },
        # Every partition of a run is generated inside one process (see assets/images.py); the
        # multiprocess executor would only add a process start per step.
        executor=dg.in_process_executor,
    )


def progress_hub(settings: PipelineSettings) -> ProgressHub:
    """The hub publisher; the token only ever as `dg.EnvVar`, and only when it is set."""
    token = dg.EnvVar("ASSET_PIPELINE_HUB_TOKEN") if os.environ.get("ASSET_PIPELINE_HUB_TOKEN") else None
    return ProgressHub(url=settings.hub_url, token=token, enabled=settings.hub_enabled)


def image_generator(settings: PipelineSettings) -> ImageGenerator:
    """The generator resource from the settings; the Replicate token only ever as `dg.EnvVar`."""
    token = dg.EnvVar("REPLICATE_API_TOKEN") if settings.backend == "replicate" else None
    return ImageGenerator(
        backend=settings.backend,
        model=settings.model,
        max_concurrency=settings.max_concurrency,
        database_url=settings.ledger_url,
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


defs = build_defs()
