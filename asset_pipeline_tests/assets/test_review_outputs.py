"""What the review loop changes in the pipeline's outputs: `asset_manifest` lists each image's
review state and publishes approved images only on request; `contact_sheet` marks rejected
images; the `approved` check passes for a re-materialized image that was approved before."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dagster as dg
from PIL import Image

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.review_checks import APPROVED
from asset_pipeline.imaging.contact_sheet import CELL, REJECTED_COLOUR
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.reviews import record_review
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.helpers import materializations, materialize, pipeline_defs


def test_manifest_contact_sheet_and_check_follow_the_reviews(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    first = materialize(defs, instance, first="img-00", last="img-02")
    assert first.success
    shas = {key: metadata["sha256"] for key, metadata in materializations(first).items()}
    engine = ledger_engine(PipelineSettings(catalog=catalog_path, data_dir=data_dir).ledger_url)
    record_review(engine, partition_key="img-00", sha256=shas["img-00"], decision="approved", note="good")
    record_review(engine, partition_key="img-01", sha256=shas["img-01"], decision="rejected", note="hands")

    def manifest(approved_only: bool) -> dict:
        result = dg.materialize(list(defs.assets or []), selection=["asset_manifest"], instance=instance,
                                resources=dict(defs.resources or {}),
                                run_config={"ops": {"asset_manifest": {"config": {"approved_only": approved_only}}}})
        assert result.success
        return json.loads((data_dir / "manifest.json").read_text())

    everything = manifest(False)
    assert {e["id"]: e["review_state"] for e in everything["images"]} == {
        "img-00": "approved", "img-01": "rejected", "img-02": "unreviewed"}
    assert {e["id"]: e["review_note"] for e in everything["images"]}["img-01"] == "hands"
    published = manifest(True)
    assert [e["id"] for e in published["images"]] == ["img-00"]
    assert (published["approved_only"], published["withheld_unapproved"], published["count"]) == (True, 2, 1)

    sheet = materialize(defs, instance, selection="contact_sheet")
    assert sheet.success
    [event] = sheet.get_asset_materialization_events()
    assert event.materialization.metadata["rejected"].value == ["img-01"]
    page = Image.open(io.BytesIO((data_dir / "contact_sheet" / "page-01.png").read_bytes())).convert("RGB")
    assert page.getpixel((CELL + 2, 2)) == REJECTED_COLOUR  # img-01 is the second cell: framed in red
    assert page.getpixel((2, 2)) != REJECTED_COLOUR

    # Re-materializing img-00 finds the same picture (a cache hit): its approval still holds.
    again = materialize(defs, instance, partition="img-00")
    checks = [e.event_specific_data for e in again.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == APPROVED]
    assert [(c.partition, c.passed, c.severity) for c in checks] == [("img-00", True, dg.AssetCheckSeverity.WARN)]
    assert checks[0].asset_key == IMAGES
    engine.dispose()
