"""Request hashes: equal for identical pictures whatever the partition, different otherwise."""

from __future__ import annotations

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.generation.request import build_request


def spec(**changes: object) -> ImageSpec:
    return ImageSpec.model_validate({"id": "a", "category": "icon", "prompt": "a key", "seed": 1, **changes})


def test_identical_pictures_share_a_request_hash_across_partitions() -> None:
    first = build_request(spec(), backend="placeholder", model="m")
    twin = build_request(spec(id="b", category="hero"), backend="placeholder", model="m")
    assert first.request_hash == twin.request_hash
    assert len(first.request_hash) == 64


def test_anything_that_changes_pixels_changes_the_hash() -> None:
    base = build_request(spec(), backend="placeholder", model="m").request_hash
    assert build_request(spec(seed=2), backend="placeholder", model="m").request_hash != base
    assert build_request(spec(), backend="replicate", model="m").request_hash != base
    assert build_request(spec(), backend="placeholder", model="other").request_hash != base
    assert build_request(spec(model="override"), backend="placeholder", model="m").model == "override"
