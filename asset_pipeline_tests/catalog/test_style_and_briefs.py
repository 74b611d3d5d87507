"""The catalog's `style:` section and per-entry `brief` / `prompt_override`: hostile values are
refused naming the entry and field, entries without briefs keep the spec hash they always had,
and the style guide's version enters the data version of brief entries only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asset_pipeline.catalog import load_catalog
from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import CatalogError

STYLE = {"guide": "Warm watercolour palette."}


def problems(tmp_path: Path, document: object) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CatalogError) as error:
        load_catalog(path)
    return [str(problem) for problem in error.value.problems]


def test_entries_without_briefs_keep_their_spec_hash() -> None:
    spec = ImageSpec.model_validate({"id": "img-00", "category": "icon", "prompt": "a test icon number 0",
                                     "width": 96, "height": 64})
    # The hash this entry had before briefs existed (computed by the previous release).
    assert spec.spec_hash == "fcbb056dcd798b39b29549b3910ff65a7b256028d73303cbd9033a53fb6222e3"


def test_the_style_version_counts_for_briefs_only(tmp_path: Path) -> None:
    def versions(guide: str) -> dict[str, str]:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"style": {"guide": guide}, "images": [
            {"id": "b", "category": "s", "brief": "a key"},
            {"id": "w", "category": "s", "prompt": "a key"},
            {"id": "p", "category": "s", "brief": "a key", "prompt_override": "a pinned key"},
        ]}))
        catalog = load_catalog(path)
        return {spec.id: catalog.partition_version(spec) for spec in catalog.images}

    before, after = versions("Warm."), versions("Cool.")
    assert before["b"] != after["b"]
    assert before["w"] == after["w"] and before["p"] == after["p"]


def test_hostile_styles_and_briefs_name_entry_and_field(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "style": {"guide": "ok", "colour": "red", "examples": [{"brief": "x"}]},
        "images": [
            {"id": "bidi", "category": "s", "brief": "a key \u202e reversed"},
            {"id": "huge", "category": "s", "brief": "x" * 1001},
            {"id": "nothing", "category": "s"},
            {"id": "empty-override", "category": "s", "brief": "a key", "prompt_override": "   "},
        ],
    })
    joined = "\n".join(found)
    assert "entry style: field 'colour': unknown field" in joined
    assert "entry style: field 'examples.0.prompt': is required" in joined
    assert "entry 'bidi' (#0): field 'brief': must not contain control, bidi or zero-width characters (U+202E" in joined
    assert "entry 'huge' (#1): field 'brief'" in joined
    assert "entry 'nothing' (#2): needs a 'prompt' (used as written) or a 'brief'" in joined
    assert "entry 'empty-override' (#3): field 'prompt_override': must not be empty" in joined


@pytest.mark.parametrize("style", [["a", "list"], "just text", {"guide": ""}, {"guide": "g", "examples": [{}] * 9}])
def test_malformed_style_sections_are_refused(tmp_path: Path, style: object) -> None:
    found = problems(tmp_path, {"style": style, "images": [{"id": "a", "category": "s", "prompt": "p"}]})
    assert found and all("style" in problem for problem in found)
