"""Catalog validation: every bad-input class gives one clear message naming file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline.catalog import load_catalog
from asset_pipeline.catalog.spec import derived_seed
from asset_pipeline.errors import CatalogError
from asset_pipeline_testing.helpers import small_entries, write_catalog


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    return [str(problem) for problem in caught.value.problems]


def test_bundled_catalog_has_about_490_valid_images() -> None:
    catalog = load_catalog()
    assert 480 <= len(catalog.images) <= 500
    assert len(set(catalog.ids)) == len(catalog.ids)
    categories = {spec.category for spec in catalog.images}
    assert {"hero", "icon", "background", "family-scene", "advisor-scene", "document", "infographic"} <= categories
    icon = next(spec for spec in catalog.images if spec.category == "icon")
    hero = next(spec for spec in catalog.images if spec.category == "hero")
    assert (icon.width, icon.height) == (512, 512) and hero.width > hero.height


def test_defaults_apply_unless_the_entry_overrides(tmp_path: Path) -> None:
    entries = [{"id": "a", "category": "icon", "prompt": "p"}, {"id": "b", "category": "icon", "prompt": "p", "steps": 9}]
    catalog = load_catalog(write_catalog(tmp_path / "c.yaml", entries, defaults={"steps": 12, "width": 512}))
    assert [spec.steps for spec in catalog.images] == [12, 9]
    assert catalog.get("a").width == 512
    assert catalog.get("a").seed == derived_seed("a")


def test_duplicate_id_names_the_entry_and_both_indexes(tmp_path: Path) -> None:
    entries = small_entries(3) + [{"id": "img-01", "category": "icon", "prompt": "again"}]
    path = write_catalog(tmp_path / "dup.yaml", entries)
    assert problems_of(path) == [f"{path}: entry 'img-01': field 'id': duplicate id: used by 2 entries (indexes 1, 3)"]


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "A-Capital", "-leading", "x" * 81, "a b", "nul\x00byte"])
def test_unsafe_ids_are_rejected(tmp_path: Path, bad_id: str) -> None:
    path = write_catalog(tmp_path / "ids.yaml", [{"id": bad_id, "category": "icon", "prompt": "p"}])
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: entry ")
    assert "field 'id': must be a slug" in problem


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("width", 1001, "must be a multiple of 8 (got 1001; nearest is 1000)"),
        ("height", 0, "greater than or equal to 64"),
        ("width", 4096, "less than or equal to 2048"),
        ("height", "tall", "valid integer"),
    ],
)
def test_bad_sizes(tmp_path: Path, field: str, value: object, reason: str) -> None:
    entry = {"id": "hero-1", "category": "hero", "prompt": "p", field: value}
    path = write_catalog(tmp_path / "size.yaml", [entry])
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: entry 'hero-1' (#0): field '{field}': ")
    assert reason in problem


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 2001, "bad\x00prompt"])
def test_empty_huge_or_binary_prompts(tmp_path: Path, prompt: str) -> None:
    path = write_catalog(tmp_path / "prompt.yaml", [{"id": "p1", "category": "icon", "prompt": prompt}])
    [problem] = problems_of(path)
    assert f"{path}: entry 'p1' (#0): field 'prompt': " in problem


def test_unknown_fields_are_rejected_everywhere(tmp_path: Path) -> None:
    entry = {"id": "p1", "category": "icon", "prompt": "p", "colour": "red"}
    path = write_catalog(tmp_path / "unknown.yaml", [entry], defaults={"sampler": "euler"})
    assert problems_of(path) == [
        f"{path}: entry defaults: field 'sampler': unknown field",
        f"{path}: entry 'p1' (#0): field 'colour': unknown field",
    ]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    entries = [
        {"id": "ok-1", "category": "icon", "prompt": "fine"},
        {"id": "bad-1", "category": "icon", "prompt": "", "width": 10},
        "not a mapping",
        {"category": "icon", "prompt": "no id"},
    ]
    problems = problems_of(write_catalog(tmp_path / "many.yaml", entries))
    assert len(problems) == 4
    assert any("entry 'bad-1' (#1): field 'prompt'" in p for p in problems)
    assert any("entry 'bad-1' (#1): field 'width'" in p for p in problems)
    assert any("entry #2: must be a mapping, got str" in p for p in problems)
    assert any("entry #3: field 'id': is required" in p for p in problems)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("images:\n  - id: a\n    prompt: [unclosed\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: malformed YAML: ")
    assert "line 4" in problem or "line 3" in problem


def test_missing_file_and_wrong_shape(tmp_path: Path) -> None:
    assert "cannot read the catalog" in problems_of(tmp_path / "absent.yaml")[0]
    listing = tmp_path / "list.yaml"
    listing.write_text("- id: a\n")
    assert problems_of(listing) == [f"{listing}: the catalog must be a mapping with an 'images:' list"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("images: []\nextra: 1\n")
    assert problems_of(empty) == [
        f"{empty}: field 'extra': unknown top-level key (expected 'defaults', 'style' and 'images')",
        f"{empty}: field 'images': must be a non-empty list of image entries",
    ]
