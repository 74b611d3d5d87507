"""`image_variants`: a thumbnail and a web-sized copy of every stored image, per partition."""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from asset_pipeline.assets.keys import IMAGE_VARIANTS, IMAGES
from asset_pipeline.assets.lineage import event_data_version, latest_event, provenance_tags
from asset_pipeline.assets.partition_runner import per_partition_asset, raise_for_failures, run_concurrently
from asset_pipeline.errors import AssetPipelineError
from asset_pipeline.imaging.thumbnails import resized
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.storage.atomic import atomic_write

THUMBNAIL_SIDE = 256
WEB_SIDE = 1280
VARIANTS_CODE_VERSION = "1"
VARIANT_FILES = {"thumbnail": ("thumb.png", THUMBNAIL_SIDE, "PNG"), "web": ("web.webp", WEB_SIDE, "WEBP")}


@dataclass(frozen=True)
class VariantOutcome:
    partition_key: str
    paths: dict[str, str]
    error: str | None = None


def make_variants(partition_key: str, store: ImageStore) -> VariantOutcome:
    try:
        png = store.read_partition(partition_key)
        paths = {}
        for name, (file_name, side, image_format) in VARIANT_FILES.items():
            path = store.variant_path(partition_key, file_name)
            atomic_write(path, resized(png, max_side=side, format=image_format))
            paths[name] = str(path)
        return VariantOutcome(partition_key, paths)
    except (AssetPipelineError, OSError, ValueError) as exc:
        return VariantOutcome(partition_key, {}, error=str(exc))


def build_image_variants(
    partitions_def: dg.StaticPartitionsDefinition, *, partitions_per_run: int | None = None
) -> dg.AssetsDefinition:
    @per_partition_asset(
        partitions_per_run=partitions_per_run,
        key=IMAGE_VARIANTS,
        partitions_def=partitions_def,
        deps=[IMAGES],
        code_version=VARIANTS_CODE_VERSION,
        kinds={"png", "webp"},
        description=f"Thumbnail ({THUMBNAIL_SIDE}px PNG) and web-size ({WEB_SIDE}px WebP) copies of each image.",
    )
    def image_variants(context: dg.AssetExecutionContext, image_store: ImageStore) -> Iterator[dg.AssetMaterialization]:
        keys = context.partition_keys
        failures: dict[str, str] = {}
        work = lambda key: make_variants(key, image_store)  # noqa: E731
        for outcome in run_concurrently(keys, work, max_concurrency=os.cpu_count() or 2):
            source = latest_event(context.instance, IMAGES, outcome.partition_key, observation=False)
            source_version = event_data_version(source)
            if outcome.error is None and (source is None or source_version is None):
                outcome = VariantOutcome(outcome.partition_key, {}, error="images has no materialization for this partition")
            if outcome.error is not None:
                failures[outcome.partition_key] = outcome.error
                context.log.error(f"partition {outcome.partition_key} failed: {outcome.error}")
                continue
            assert source is not None and source_version is not None
            yield dg.AssetMaterialization(
                asset_key=IMAGE_VARIANTS,
                partition=outcome.partition_key,
                metadata={name: dg.MetadataValue.path(path) for name, path in outcome.paths.items()},
                tags=provenance_tags(
                    code_version=VARIANTS_CODE_VERSION,
                    data_version=source_version,
                    inputs={IMAGES: (source_version, source.storage_id)},
                ),
            )
        raise_for_failures(failures, total=len(keys))

    return image_variants
