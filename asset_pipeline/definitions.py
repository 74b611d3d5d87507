"""The code location: `defs`, built from the catalog and the `ASSET_PIPELINE_*` settings.

Loading fails with one line per problem when the catalog is invalid, naming file, entry and field,
and with one line naming the variable for a bad setting; the Dagster CLI prints either without a
traceback (`DefinitionsNotLoaded`).
"""

from __future__ import annotations

import warnings

import click
import dagster as dg

from asset_pipeline.assets import build_assets
from asset_pipeline.assets.keys import IMAGE_CATALOG
from asset_pipeline.errors import CatalogError, ConfigurationError
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.configured import image_generator, ledger, ledger_url, progress_hub, prompt_writer
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.sensors.failed_images import failed_images_sensor
from asset_pipeline.sensors.rejected_images import rejected_images_sensor
from asset_pipeline.sensors.run_events_to_hub import run_events_to_hub
from asset_pipeline.sensors.schedules import build_schedules, summaries_job
from asset_pipeline.settings import PipelineSettings, load_settings
from asset_pipeline.storage.data_dir import check_data_dir


def build_defs(settings: PipelineSettings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    catalog = settings.load_catalog()
    with warnings.catch_warnings():
        # observable_source_asset, backfill_policy and partitioned check specs are marked beta or
        # preview; we rely on them knowingly (see DESIGN.md) and keep the CLI output clean.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        assets = build_assets(catalog, partitions_per_run=settings.partitions_per_run)
    return dg.Definitions(
        assets=assets,
        sensors=[failed_images_sensor, run_events_to_hub, rejected_images_sensor],
        schedules=build_schedules(images_cron=settings.images_cron, summaries_cron=settings.summaries_cron,
                                  partitions_per_run=settings.partitions_per_run),
        jobs=[
            summaries_job,
            dg.define_asset_job(
                "observe_image_catalog",
                selection=[IMAGE_CATALOG],
                description="Record each catalog entry's spec hash so edited prompts show their images as stale.",
            )
        ],
        resources={
            "catalog_file": CatalogFile(path=settings.catalog_file, database_url=ledger_url(settings)),  # review takes
            "image_store": ImageStore(root=str(settings.data_dir)),
            "image_generator": image_generator(settings),
            "ledger": ledger(settings),
            "progress_hub": progress_hub(settings),
            "prompt_writer": prompt_writer(settings),
        },
        # Every partition of a run is generated inside one process (see assets/images.py); the
        # multiprocess executor would only add a process start per step.
        executor=dg.in_process_executor,
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
