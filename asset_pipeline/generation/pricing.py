"""The price table: what each model costs, how it takes its size, and what to reserve before a call.

Models billed per output image have a fixed price. Models billed by time cost `predict_time` x the
hardware rate; for those we reserve the rate x the longest we let a prediction run (we cancel it
then), so the charge can never exceed the reservation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from asset_pipeline.errors import ConfigurationError

FLUX_ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


class ModelPrice(BaseModel):
    """One model's billing and input conventions. Plain pydantic: the run-config class that lets
    definitions override it is `resources/generator_config.py::ModelPriceConfig`, a subclass."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_image_usd: float | None = Field(default=None, ge=0, description="Price of one output image.")
    per_second_usd: float | None = Field(default=None, ge=0, description="Hardware price per second of predict_time.")
    size_input: Literal["aspect_ratio", "width_height"] = Field(
        default="width_height", description="Whether the model takes an aspect ratio (flux) or width and height."
    )
    max_steps: int | None = Field(default=None, ge=1, description="Upper bound the model accepts for steps.")
    accepts_guidance: bool = Field(default=True, description="Whether the model takes a guidance input.")

    @model_validator(mode="after")
    def _one_billing_mode(self) -> ModelPrice:
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


@dataclass(frozen=True)
class Bill:
    """What a prediction cost; `note` says why the figure is not simply the provider's own report."""

    usd: float
    note: str | None = None


def billed_usd(
    price: ModelPrice, *, succeeded: bool, predict_time_s: object, fallback_s: float | None = None,
    max_predict_seconds: float = math.inf,
) -> Bill:
    """What the provider bills: per-image models only for success; time-billed ones for time used.

    `predict_time_s` is what the provider reported, untrusted: it is used only when it is a finite
    number of seconds within [0, max_predict_seconds]. Otherwise the bill uses `fallback_s` (the
    prediction's own timestamps, or the time we measured), clamped to the same range, and says so.
    """
    if price.per_image_usd is not None:
        return Bill(price.per_image_usd if succeeded else 0.0)
    assert price.per_second_usd is not None
    seconds, note = billable_seconds(predict_time_s, fallback_s=fallback_s, max_s=max_predict_seconds)
    return Bill(price.per_second_usd * seconds, note)


def billable_seconds(reported: object, *, fallback_s: float | None, max_s: float) -> tuple[float, str | None]:
    """Seconds to bill and, when the provider's figure was not usable, why and what replaced it."""
    if _plausible(reported, max_s):
        return float(reported), None  # type: ignore[arg-type]
    shown = repr(reported)[:40]
    if reported is None:
        problem = "the provider reported no predict_time"
    else:
        problem = f"the provider reported predict_time={shown}, not a duration within [0, {max_s:g}] s"
    if fallback_s is None or not math.isfinite(fallback_s):
        return max_s if math.isfinite(max_s) else 0.0, f"{problem}; billed the longest allowed run ({max_s:g} s)"
    seconds = min(max(fallback_s, 0.0), max_s)
    return seconds, f"{problem}; billed the {seconds:.3f} s the prediction took by its timestamps or our clock"


def _plausible(value: object, max_s: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and 0 <= value <= max_s
    except OverflowError:  # an int too large for a float: 10**400 seconds is garbage too
        return False


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to width:height, compared on a log scale."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(math.log(w / h) - target)

    return min(FLUX_ASPECT_RATIOS, key=distance)
