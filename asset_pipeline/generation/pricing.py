"""The price table: what each model costs, how it takes its size, and what to reserve before a call.

Models billed per output image have a fixed price. Models billed by time cost `predict_time` x the
hardware rate; for those we reserve the rate x the longest we let a prediction run (we cancel it
then), so the charge can never exceed the reservation.
"""

from __future__ import annotations

import math
from typing import Literal

import dagster as dg
from pydantic import Field, model_validator

from asset_pipeline.errors import ConfigurationError

FLUX_ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


class ModelPrice(dg.Config):
    """One model's billing and input conventions (a Dagster config class, so runs can override it)."""

    per_image_usd: float | None = Field(default=None, ge=0, description="Price of one output image.")
    per_second_usd: float | None = Field(default=None, ge=0, description="Hardware price per second of predict_time.")
    size_input: Literal["aspect_ratio", "width_height"] = Field(
        default="width_height", description="Whether the model takes an aspect ratio (flux) or width and height."
    )
    max_steps: int | None = Field(default=None, ge=1, description="Upper bound the model accepts for steps.")
    accepts_guidance: bool = Field(default=True, description="Whether the model takes a guidance input.")

    @model_validator(mode="after")
    def _one_billing_mode(self) -> "ModelPrice":
        if (self.per_image_usd is None) == (self.per_second_usd is None):
            raise ValueError("set exactly one of per_image_usd and per_second_usd")
        return self


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "black-forest-labs/flux-schnell": ModelPrice(
        per_image_usd=0.003, size_input="aspect_ratio", max_steps=4, accepts_guidance=False
    ),
    "black-forest-labs/flux-dev": ModelPrice(per_image_usd=0.025, size_input="aspect_ratio", max_steps=50),
    "black-forest-labs/flux-1.1-pro": ModelPrice(per_image_usd=0.04, size_input="aspect_ratio"),
    "stability-ai/sdxl": ModelPrice(per_second_usd=0.000975),
}


def model_name(reference: str) -> str:
    """`owner/name` of a reference that may carry a `:version`."""
    return reference.split(":", 1)[0]


def price_for(prices: dict[str, ModelPrice], reference: str) -> ModelPrice:
    price = prices.get(reference) or prices.get(model_name(reference))
    if price is None:
        raise ConfigurationError(
            "prices", f"no price for model '{reference}'; add it to the price table rather than spend blind"
        )
    return price


def reservation_usd(price: ModelPrice, *, max_predict_seconds: float) -> float:
    if price.per_image_usd is not None:
        return price.per_image_usd
    assert price.per_second_usd is not None
    return price.per_second_usd * max_predict_seconds


def billed_usd(price: ModelPrice, *, succeeded: bool, predict_time_s: float | None) -> float:
    """What the provider bills: per-image models only for success; time-billed ones for time used."""
    if price.per_image_usd is not None:
        return price.per_image_usd if succeeded else 0.0
    assert price.per_second_usd is not None
    return price.per_second_usd * (predict_time_s or 0.0)


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height, compared on a log scale."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(math.log(w / h) - target)

    return min(FLUX_ASPECT_RATIOS, key=distance)
