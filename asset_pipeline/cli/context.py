"""What the operator commands share: settings, catalog, the generator and store they describe."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from asset_pipeline.catalog import Catalog, load_catalog
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.settings import PipelineSettings, load_settings


@dataclass
class CommandContext:
    settings: PipelineSettings

    @classmethod
    def from_environment(cls) -> "CommandContext":
        return cls(load_settings())

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(str(self.settings.catalog) if self.settings.catalog else None)

    @cached_property
    def generator(self) -> ImageGenerator:
        """The run's generator as configured, without its API token (these commands never call out).

        Outside a Dagster run nothing resolves `dg.EnvVar`, so the ledger URL is the plain setting."""
        from asset_pipeline.definitions import image_generator

        return image_generator(self.settings).model_copy(
            update={"replicate_api_token": None, "database_url": self.settings.ledger_url}
        )

    @cached_property
    def store(self) -> ImageStore:
        return ImageStore(root=str(self.settings.data_dir))
