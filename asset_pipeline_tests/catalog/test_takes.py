"""Review takes in the spec: take 0 keeps today's hash and seed; a later take changes hash and seed,
appends its prompt additions, and is validated like any spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asset_pipeline.catalog.spec import MAX_PROMPT_ADDITIONS, ImageSpec, take_seed
from asset_pipeline.generation.request import build_request

BASE = {"id": "hero-a", "category": "hero", "prompt": "a lighthouse", "seed": 7, "style": ["flat"]}


def test_take_zero_keeps_the_hash_and_seed_specs_always_had() -> None:
    spec = ImageSpec.model_validate(BASE)
    assert spec.for_take(0) is spec
    assert spec.render_seed == 7
    # The hash of an unreviewed spec without a brief is the hash of its fields without the optional ones (as before).
    import hashlib
    import json
    legacy = {k: v for k, v in spec.model_dump(mode="json").items() if k not in ("take", "prompt_additions", "brief", "prompt_override")}
    canonical = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    assert spec.spec_hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_new_take_changes_hash_seed_and_prompt() -> None:
    spec = ImageSpec.model_validate(BASE)
    second = spec.for_take(1, ("no text in the image",))
    third = spec.for_take(2, ("no text in the image",))
    assert len({spec.spec_hash, second.spec_hash, third.spec_hash}) == 3
    assert second.take == 1 and second.render_seed == take_seed(7, 1) != 7
    assert third.render_seed not in (7, second.render_seed)
    assert second.full_prompt == "a lighthouse, flat, no text in the image"
    request = build_request(second, backend="placeholder", model="m")
    assert (request.seed, request.prompt) == (second.render_seed, second.full_prompt)
    assert request.request_hash != build_request(spec, backend="placeholder", model="m").request_hash


def test_an_explicit_take_in_the_catalog_counts_too() -> None:
    assert ImageSpec.model_validate({**BASE, "take": 3}).for_take(1).take == 4


@pytest.mark.parametrize("bad", [{"take": -1}, {"take": 10**9}, {"prompt_additions": ["x" * 301]},
                                 {"prompt_additions": ["bidi \u202e"]}, {"prompt_additions": [""]}])
def test_hostile_take_fields_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ImageSpec.model_validate({**BASE, **bad})


def test_only_the_newest_additions_are_kept() -> None:
    spec = ImageSpec.model_validate(BASE).for_take(9, tuple(f"fix {i}" for i in range(9)))
    assert spec.prompt_additions == tuple(f"fix {i}" for i in range(9 - MAX_PROMPT_ADDITIONS, 9))
