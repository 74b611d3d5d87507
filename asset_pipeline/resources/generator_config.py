"""The nested run-config blocks of the `image_generator` resource.

Dagster needs `dg.Config` classes for nested config, and the core (generation/) imports no
Dagster, so each block here is the core's own pydantic model with `dg.Config` mixed in: every
field, default and validator is declared once, in the core, and an instance of the config class
is an instance of the core model, handed to the backends as is.
"""

from __future__ import annotations

import dagster as dg

from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.generation.pricing import DEFAULT_PRICES, ModelPrice


class ModelPriceConfig(dg.Config, ModelPrice):
    """One model's billing and input conventions (`generation.pricing.ModelPrice`), as run config."""


class DiffusersConfig(dg.Config, DiffusersOptions):
    """The local SDXL pipeline's settings (`generation.diffusers_options.DiffusersOptions`), as run config."""


def default_price_config() -> dict[str, ModelPriceConfig]:
    """The core's default price table as config blocks."""
    return {model: ModelPriceConfig(**price.model_dump()) for model, price in DEFAULT_PRICES.items()}
