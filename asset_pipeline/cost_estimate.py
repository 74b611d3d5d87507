"""What generating some image partitions now would cost: the one estimate the images schedule,
`asset-pipeline estimate` and `asset-pipeline retry-failed` all use.

An image already in the store is a cache hit and costs nothing; any other costs what the backend
reserves for its model (the most it may charge). Partitions asking for the same picture are
generated once, so the total counts each distinct request once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from asset_pipeline.catalog import Catalog
from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore


@dataclass(frozen=True)
class CostEstimate:
    costs: dict[str, float]  # partition key -> USD to generate it alone now; 0 for a cache hit
    cache_hits: int  # partitions whose image is stored already
    to_generate: int  # distinct requests that are not stored yet
    total_usd: float  # each distinct request once
    paid: bool  # False: the backend is free, no budget is used


def estimate_costs(keys: Iterable[str], *, catalog: Catalog, generator: ImageGenerator, store: ImageStore,
                   specs: Mapping[str, ImageSpec] | None = None) -> CostEstimate:
    """`specs` replaces catalog entries by the spec `images` would render (a brief's final prompt)."""
    costs: dict[str, float] = {}
    distinct: dict[str, float] = {}
    cache_hits = 0
    for key in keys:
        request = generator.request_for(specs[key] if specs and key in specs else catalog.get(key))
        if store.contains(request.request_hash):
            cache_hits += 1
            costs[key] = 0.0
        else:
            costs[key] = distinct.setdefault(request.request_hash, generator.reservation_usd(request))
    return CostEstimate(costs=costs, cache_hits=cache_hits, to_generate=len(distinct),
                        total_usd=round(sum(distinct.values()), 6), paid=generator.is_paid)
