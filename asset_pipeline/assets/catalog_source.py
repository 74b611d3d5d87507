"""`image_catalog`: the observable source behind `images`, one data version per partition.

Each partition's data version is the hash of its spec (plus the style guide's version for entries
written from a brief: `Catalog.partition_version`), so editing one prompt or brief and observing the
catalog makes exactly that prompt, and through it its image, stale in the UI.
The spec includes the partition's review take (`CatalogFile` applies it from the ledger): rejecting
an image changes its hash the same way.
"""

import dagster as dg

from asset_pipeline.assets.keys import IMAGE_CATALOG
from asset_pipeline.resources.catalog_file import CatalogFile


def build_image_catalog(partitions_def: dg.StaticPartitionsDefinition) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=IMAGE_CATALOG,
        partitions_def=partitions_def,
        description="The image catalog file; one partition per image spec, versioned by the spec's hash.",
    )
    def image_catalog(catalog_file: CatalogFile) -> dg.DataVersionsByPartition:
        catalog = catalog_file.load()
        known = set(partitions_def.get_partition_keys())
        return dg.DataVersionsByPartition(
            {spec.id: dg.DataVersion(catalog.partition_version(spec)) for spec in catalog.images if spec.id in known}
        )

    return image_catalog
