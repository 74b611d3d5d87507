"""`asset_manifest` costs add up: after paid partitions are re-executed as free cache hits, each image
still shows what it cost when it was paid for, and the total equals the ledger's charges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asset_pipeline.ledger.charges import charged_by_request
from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog


def test_the_manifest_reports_what_each_image_cost_when_paid(fake_replicate, tmp_path: Path, data_dir: Path,
                                                              instance) -> None:
    entries = [{"id": f"img-{i:02d}", "category": "icon", "prompt": f"a brass key number {i}", "width": 512,
                "height": 512, "seed": i} for i in range(4)]
    entries[3] = {**entries[0], "id": "img-03"}  # the same picture as img-00: paid once
    catalog = write_catalog(tmp_path / "c.yaml", entries)
    defs = pipeline_defs(catalog, data_dir, backend="replicate")
    assert materialize(defs, instance, first="img-00", last="img-03").success
    assert materialize(defs, instance, first="img-00", last="img-01").success  # re-executed: free cache hits
    assert materialize(defs, instance, selection="asset_manifest").success

    manifest = json.loads((data_dir / "manifest.json").read_text())
    by_id = {entry["id"]: entry for entry in manifest["images"]}
    assert by_id["img-00"]["cache_hit"] is True and by_id["img-00"]["run_cost_usd"] == 0.0
    assert {key: entry["cost_usd"] for key, entry in by_id.items()} == pytest.approx(
        {"img-00": 0.003, "img-01": 0.003, "img-02": 0.003, "img-03": 0.003})
    ledger = defs.resources["image_generator"].ledger
    spent = ledger.status(defs.resources["image_generator"].caps).spent_total_usd
    assert manifest["total_cost_usd"] == pytest.approx(0.009) == pytest.approx(spent)
    assert spent == pytest.approx(fake_replicate.bill_usd)
    charged = charged_by_request(ledger.engine, {entry["request_hash"] for entry in manifest["images"]})
    assert manifest["total_cost_usd"] == pytest.approx(sum(charged.values()))


def test_a_free_backend_lists_images_at_no_cost(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    assert materialize(defs, instance, first="img-00", last="img-01").success
    assert materialize(defs, instance, selection="asset_manifest").success
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["count"] == 2 and manifest["total_cost_usd"] == 0.0
    assert all(entry["cost_usd"] == 0.0 for entry in manifest["images"])
