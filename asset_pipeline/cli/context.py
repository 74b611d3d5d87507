"""What the operator commands share: settings, catalog, the generator and store they describe.

Problems with the data directory or the ledger database become `ConfigurationError`s naming the
variable (and the URL without its password), which the command group prints as one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.exc import SQLAlchemyError

from asset_pipeline.catalog import Catalog
from asset_pipeline.errors import ConfigurationError
from asset_pipeline.resources.catalog_file import with_review_takes
from asset_pipeline.resources.configured import from_the_settings, image_generator
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.settings import PipelineSettings, load_settings
from asset_pipeline.storage.data_dir import check_data_dir
from asset_pipeline.storage.database_url import shown_url


@dataclass
class CommandContext:
    settings: PipelineSettings

    @classmethod
    def from_environment(cls) -> CommandContext:
        return cls(load_settings())

    @cached_property
    def catalog(self) -> Catalog:
        """The catalog with the review loop's takes applied (what the next run renders)."""
        catalog = self.settings.load_catalog()
        if self.settings.database_url is None:  # the ledger lives in the data directory
            check_data_dir(self.settings.data_dir, write=False)
        try:
            return with_review_takes(catalog, self.settings.ledger_url)
        except SQLAlchemyError as exc:
            raise ledger_error(self.settings, exc) from None

    @cached_property
    def generator(self) -> ImageGenerator:
        """The run's generator as configured, without its API token (these commands never call out).

        Outside a Dagster run nothing resolves `dg.EnvVar`, so the ledger URL is the plain setting."""
        if self.settings.database_url is None:  # the ledger lives in the data directory
            check_data_dir(self.settings.data_dir, write=False)
        return image_generator(self.settings).model_copy(
            update={"replicate_api_token": None, "database_url": self.settings.ledger_url}
        )

    @cached_property
    def ledger(self) -> LedgerResource:
        """The ledger's reader, opened now so that an unusable database is reported by name."""
        if self.settings.database_url is None:  # the ledger lives in the data directory
            check_data_dir(self.settings.data_dir, write=False)
        resource = LedgerResource(**{**from_the_settings(LedgerResource, self.settings),
                                     "database_url": self.settings.ledger_url})
        try:
            _ = resource.engine
        except SQLAlchemyError as exc:
            raise ledger_error(self.settings, exc) from None
        return resource

    @cached_property
    def store(self) -> ImageStore:
        check_data_dir(self.settings.data_dir, write=False)
        return ImageStore(root=str(self.settings.data_dir))


def ledger_error(settings: PipelineSettings, exc: SQLAlchemyError) -> ConfigurationError:
    """One line naming the ledger's variable, its URL without the password, and the driver's reason."""
    variable = "ASSET_PIPELINE_DATABASE_URL" if settings.database_url else "ASSET_PIPELINE_DATA_DIR"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return ConfigurationError(variable, f"cannot use the ledger database {shown_url(settings.ledger_url)}: {reason}")
