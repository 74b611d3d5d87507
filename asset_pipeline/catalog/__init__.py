"""The image catalog: pydantic models of one image spec and of the YAML file that lists them."""

from asset_pipeline.catalog.loader import default_catalog_path, load_catalog
from asset_pipeline.catalog.spec import Catalog, ImageSpec

__all__ = ["Catalog", "ImageSpec", "default_catalog_path", "load_catalog"]
