"""The code location: `defs`, built from the catalog and the `ASSET_PIPELINE_*` settings.

Loading fails with one line per problem when the catalog is invalid, naming file, entry and field,
and with one line naming the variable for a bad setting; the Dagster CLI prints either without a
traceback (`DefinitionsNotLoaded`).
"""

from __future__ import annotations

import os
import warnings

import click
import dagster as dg

from asset_pipeline.assets import build_assets
from asset_pipeline.assets.keys import IMAGE_CATALOG
from asset_pipeline.catalog import load_catalog
from asset_pipeline.errors import CatalogError, ConfigurationError
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.sensors.failed_images import failed_images_sensor
from asset_pipeline.sensors.run_events_to_hub import run_events_to_hub
from asset_pipeline.sensors.schedules import build_schedules, summaries_job
from asset_pipeline.settings import PipelineSettings, load_settings
from asset_pipeline.storage.data_dir import check_data_dir

DATABASE_URL_VARIABLE = "ASSET_PIPELINE_DATABASE_URL"


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


class DefinitionsNotLoaded(click.ClickException):
    """A bad catalog or setting, raised so that Dagster's CLI (a click application) prints the message
    as one `Error: ...` block without a Python traceback. Code servers (`dagster dev`, `dagster api
    grpc`) report it like any load error, with the same message."""

    def __init__(self, error: CatalogError | ConfigurationError):
        super().__init__(f"the asset_pipeline code location cannot load: {error}")
        self.error = error


def load_defs() -> dg.Definitions:
    """`build_defs()` from the environment; catalog and setting errors become `DefinitionsNotLoaded`.

    A data directory that can never work (a file, `/`, a system folder) is refused here already;
    whether it is writable is proven at resource setup, where nothing is created at load time."""
    try:
        settings = load_settings()
        check_data_dir(settings.data_dir, write=False)
        return build_defs(settings)
    except (CatalogError, ConfigurationError) as exc:
        raise DefinitionsNotLoaded(exc) from None


defs = load_defs()
