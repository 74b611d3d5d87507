"""Asset checks on every `images` partition: valid PNG of the requested size, not blank, not a fallback.

They are evaluated inside the materializing step (the image bytes are already in memory there) and
logged per partition right after its materialization, so a range run checks every image it makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.imaging.inspect import BLANK_STDDEV_THRESHOLD, ImageFacts

VALID_PNG = "valid_png_of_requested_size"
NOT_BLANK = "not_blank"
NOT_FALLBACK = "not_a_fallback"


def image_check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(VALID_PNG, asset=IMAGES, partitions_def=partitions_def,
                          description="The stored file decodes as a PNG of exactly the spec's width and height."),
        dg.AssetCheckSpec(NOT_BLANK, asset=IMAGES, partitions_def=partitions_def,
                          description=f"Grey-level standard deviation is at least {BLANK_STDDEV_THRESHOLD}."),
        dg.AssetCheckSpec(NOT_FALLBACK, asset=IMAGES, partitions_def=partitions_def,
                          description="The image was generated for its spec, not a generic fallback."),
    ]


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def evaluate_image_checks(facts: ImageFacts | ValueError, spec: ImageSpec, *, fallback: bool) -> tuple[CheckOutcome, ...]:
    """Run the three checks on what decoding the stored bytes of one partition found."""
    if isinstance(facts, ValueError):
        broken = CheckOutcome(VALID_PNG, False, str(facts))
        return broken, CheckOutcome(NOT_BLANK, False, "cannot measure an undecodable image"), _fallback(fallback)
    size_ok = facts.format == "PNG" and (facts.width, facts.height) == (spec.width, spec.height)
    valid = CheckOutcome(
        VALID_PNG,
        size_ok,
        f"{facts.format} {facts.width}x{facts.height}; spec asks for PNG {spec.width}x{spec.height}",
        {"width": facts.width, "height": facts.height, "format": facts.format},
    )
    not_blank = CheckOutcome(
        NOT_BLANK,
        not facts.is_blank,
        f"grey-level stddev {facts.stddev:.2f} (threshold {BLANK_STDDEV_THRESHOLD})",
        {"stddev": round(facts.stddev, 3)},
    )
    return valid, not_blank, _fallback(fallback)


def _fallback(fallback: bool) -> CheckOutcome:
    return CheckOutcome(NOT_FALLBACK, not fallback, "generic fallback image" if fallback else "generated for its spec")
