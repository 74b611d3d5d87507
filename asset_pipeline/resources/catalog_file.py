"""The catalog file as a resource, so every run reads the specs as they are on disk now.

With a ledger database it also applies the review loop's takes (ledger/reviews.py): a rejected
image's partition gets its next take, which changes its spec hash, so the `image_catalog`
observation turns exactly that partition stale and the next run renders a new image.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from asset_pipeline.catalog import Catalog, load_catalog
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.reviews import catalog_with_takes
from asset_pipeline.resources.run_config_guard import enforce_operator_config
from asset_pipeline.settings import from_settings


class CatalogFile(dg.ConfigurableResource):
    """Loads and validates the catalog YAML (ASSET_PIPELINE_CATALOG)."""

    path: str | None = Field(
        default_factory=from_settings("catalog", lambda path: str(path) if path else None),
        description="Catalog YAML file (ASSET_PIPELINE_CATALOG); unset means the bundled catalog.",
    )
    database_url: str | None = Field(
        default=None,
        description="Ledger database whose review takes are applied to the specs; unset: no takes.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Run config may not point the takes at another ledger (it also re-reads a `dg.EnvVar` URL
        that a partial run config left unresolved)."""
        enforce_operator_config(self, context, label="catalog_file",
                                fixed={"database_url": "ASSET_PIPELINE_DATABASE_URL"})

    def load(self) -> Catalog:
        catalog = load_catalog(self.path)
        return with_review_takes(catalog, self.database_url) if self.database_url else catalog


def with_review_takes(catalog: Catalog, database_url: str) -> Catalog:
    """`catalog` with each partition's review take and prompt additions applied."""
    engine = ledger_engine(database_url)
    try:
        return catalog_with_takes(catalog, engine)
    finally:
        engine.dispose()
