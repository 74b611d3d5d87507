"""`contact_sheet`: PNG pages of labelled thumbnails of every stored image, for review."""

import dagster as dg

from asset_pipeline.assets.keys import CONTACT_SHEET, IMAGE_VARIANTS, IMAGES
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline.assets.variants import VARIANT_FILES
from asset_pipeline.imaging.contact_sheet import contact_sheet_pages
from asset_pipeline.imaging.thumbnails import preview_markdown
from asset_pipeline.ledger.reviews import review_states
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.storage.atomic import atomic_write


@dg.asset(
    key=CONTACT_SHEET,
    deps=[IMAGES, IMAGE_VARIANTS],
    kinds={"png"},
    description="Grid pages of labelled thumbnails of every materialized image.",
)
def contact_sheet(
    context: dg.AssetExecutionContext, image_store: ImageStore, ledger: LedgerResource
) -> dg.MaterializeResult:
    latest = latest_materializations(context.instance, IMAGES)
    keys = sorted(latest)
    # Images rejected in review are marked, so the sheet shows which ones a new take will replace.
    states = review_states(ledger.engine, {key: _sha256(latest[key]) for key in keys})
    rejected = {key for key, (state, _) in states.items() if state == "rejected"}
    thumb_name = VARIANT_FILES["thumbnail"][0]
    items = []
    for key in keys:
        thumb = image_store.variant_path(key, thumb_name)
        items.append((key, thumb.read_bytes() if thumb.exists() else image_store.read_partition(key)))
    pages = contact_sheet_pages(items, rejected=rejected)
    paths = []
    for number, page in enumerate(pages, start=1):
        path = image_store.resolve(f"contact_sheet/page-{number:02d}.png")
        atomic_write(path, page)
        paths.append(str(path))
    for stale in sorted(image_store.resolve("contact_sheet").glob("page-*.png"))[len(pages) :]:
        stale.unlink()
    metadata: dict[str, object] = {"images": len(items), "pages": len(pages), "paths": paths,
                                   "rejected": sorted(rejected)}
    if pages:
        metadata["first_page"] = dg.MetadataValue.md(preview_markdown(pages[0], alt="contact sheet page 1", max_side=640))
        metadata["path"] = dg.MetadataValue.path(paths[0])
    return dg.MaterializeResult(metadata=metadata)


def _sha256(record: dg.EventLogRecord) -> str | None:
    materialization = record.asset_materialization
    entry = materialization.metadata.get("sha256") if materialization else None
    return str(entry.value) if entry is not None and entry.value else None
