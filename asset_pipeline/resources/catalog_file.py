"""The catalog file as a resource, so every run reads the specs as they are on disk now."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from asset_pipeline.catalog import Catalog, load_catalog
from asset_pipeline.settings import from_settings


class CatalogFile(dg.ConfigurableResource):
    """Loads and validates the catalog YAML (ASSET_PIPELINE_CATALOG)."""

    path: str | None = Field(
        default_factory=from_settings("catalog", lambda path: str(path) if path else None),
        description="Catalog YAML file (ASSET_PIPELINE_CATALOG); unset means the bundled catalog.",
    )

    def load(self) -> Catalog:
        return load_catalog(self.path)
