"""Asset definitions. Partitioned assets are built from the catalog's ids by `build_assets`."""

from __future__ import annotations

import dagster as dg

from asset_pipeline.assets.catalog_source import build_image_catalog
from asset_pipeline.assets.contact_sheet import contact_sheet
from asset_pipeline.assets.images import build_images
from asset_pipeline.assets.manifest import asset_manifest
from asset_pipeline.assets.prompts import build_prompts
from asset_pipeline.assets.spend_report import spend_report
from asset_pipeline.assets.variants import build_image_variants
from asset_pipeline.catalog import Catalog


def image_partitions(catalog: Catalog) -> dg.StaticPartitionsDefinition:
    """One partition per catalog entry, keyed by its id, in catalog order."""
    return dg.StaticPartitionsDefinition(catalog.ids)


def build_assets(catalog: Catalog, *, partitions_per_run: int | None = None) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """`partitions_per_run` splits backfills into runs of that many partitions; None keeps one run."""
    partitions = image_partitions(catalog)
    return [
        build_image_catalog(partitions),
        build_prompts(partitions, partitions_per_run=partitions_per_run),
        build_images(partitions, partitions_per_run=partitions_per_run),
        build_image_variants(partitions, partitions_per_run=partitions_per_run),
        asset_manifest,
        contact_sheet,
        spend_report,
    ]
