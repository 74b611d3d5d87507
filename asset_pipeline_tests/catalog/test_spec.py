"""Image spec model: derived seeds, spec hashes and the prompt sent to backends."""

from __future__ import annotations

from asset_pipeline.catalog.spec import ImageSpec, derived_seed


def spec(**changes: object) -> ImageSpec:
    return ImageSpec.model_validate({"id": "hero-1", "category": "hero", "prompt": "a house", **changes})


def test_seed_is_derived_from_the_id_when_missing() -> None:
    assert spec().seed == derived_seed("hero-1") == spec().seed
    assert spec(seed=7).seed == 7
    assert spec(id="hero-2").seed != spec().seed


def test_spec_hash_changes_with_any_field_and_only_then() -> None:
    assert spec().spec_hash == spec().spec_hash
    assert spec(prompt="a barn").spec_hash != spec().spec_hash
    assert spec(width=512).spec_hash != spec().spec_hash
    assert spec(style=["warm"]).spec_hash != spec().spec_hash


def test_full_prompt_appends_style_tags() -> None:
    assert spec(style=["watercolor", "soft light"]).full_prompt == "a house, watercolor, soft light"
    assert spec(prompt="  padded  ").prompt == "padded"
