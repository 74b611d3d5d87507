"""Downstream assets: per-partition variants, the JSON manifest and the contact sheet pages."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from asset_pipeline.assets.keys import IMAGE_VARIANTS
from asset_pipeline_testing.helpers import FailingGenerator, materialize, pipeline_defs, write_catalog


def test_variants_manifest_and_contact_sheet(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    flaky = FailingGenerator(failing_ids=["img-05"])
    assert not materialize(defs, instance, first="img-00", last="img-05", resources={"image_generator": flaky}).success

    variants = materialize(defs, instance, selection="image_variants", first="img-00", last="img-04")
    assert variants.success
    events = [e.materialization for e in variants.get_asset_materialization_events()]
    assert sorted(e.partition for e in events if e.asset_key == IMAGE_VARIANTS) == [f"img-{i:02d}" for i in range(5)]
    thumb = Image.open(data_dir / "variants" / "img-00" / "thumb.png")
    web = Image.open(data_dir / "variants" / "img-00" / "web.webp")
    assert thumb.format == "PNG" and max(thumb.size) <= 256
    assert web.format == "WEBP" and web.size == (96, 64)  # never upscaled

    missing = materialize(defs, instance, selection="image_variants", partition="img-05")
    assert not missing.success
    assert "img-05" in missing.failure_data_for_node("image_variants").error.message

    assert materialize(defs, instance, selection="asset_manifest").success
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["count"] == 5 and manifest["total_cost_usd"] == 0.0
    entry = manifest["images"][0]
    assert entry["id"] == "img-00" and Path(entry["path"]).exists()
    assert {"sha256", "width", "height", "cost_usd", "model", "materialized_at", "variants"} <= set(entry)

    assert materialize(defs, instance, selection="contact_sheet").success
    pages = sorted((data_dir / "contact_sheet").glob("page-*.png"))
    assert len(pages) == 1
    assert Image.open(pages[0]).size[0] > 0


def test_contact_sheet_pages_split_large_catalogs(tmp_path: Path, data_dir: Path, instance) -> None:
    entries = [{"id": f"i-{n:03d}", "category": "icon", "prompt": f"icon {n}", "width": 64, "height": 64} for n in range(100)]
    defs = pipeline_defs(write_catalog(tmp_path / "big.yaml", entries), data_dir)
    assert materialize(defs, instance, first="i-000", last="i-099").success
    assert materialize(defs, instance, selection="contact_sheet").success
    assert len(list((data_dir / "contact_sheet").glob("page-*.png"))) == 2
