"""rejected_images_sensor, evaluated with Dagster's build_sensor_context on a real instance: it
requests exactly the partitions whose current image was rejected, each take once, and nothing once
the new take exists. asset_pipeline_tests/test_review_loop.py proves the daemon runs it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.reviews import record_review
from asset_pipeline.sensors.rejected_images import rejected_images_sensor
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.helpers import materializations, materialize, pipeline_defs


def evaluate(defs: dg.Definitions, instance, cursor: str | None = None):  # type: ignore[no-untyped-def]
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        return rejected_images_sensor(context)


def test_the_sensor_requests_each_rejected_take_once(catalog_path: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog_path, data_dir)
    first = materialize(defs, instance, first="img-00", last="img-03")
    shas = {key: metadata["sha256"] for key, metadata in materializations(first).items()}
    assert rejected_images_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    nothing = evaluate(defs, instance)
    assert nothing.skip_reason is not None and "no rejected" in nothing.skip_reason.skip_message

    engine = ledger_engine(PipelineSettings(catalog=catalog_path, data_dir=data_dir).ledger_url)
    for key in ("img-01", "img-03"):
        record_review(engine, partition_key=key, sha256=shas[key], decision="rejected")
    record_review(engine, partition_key="img-02", sha256=shas["img-02"], decision="approved")
    result = evaluate(defs, instance)
    [request] = result.run_requests
    keys = {k.partition_key for k in request.asset_graph_subset.iterate_asset_partitions() if k.asset_key == IMAGES}
    assert keys == {"img-01", "img-03"} and request.requires_backfill_daemon()
    again = evaluate(defs, instance, cursor=result.cursor)
    assert again.skip_reason is not None and "already requested" in again.skip_reason.skip_message

    assert materialize(defs, instance, partition="img-01").success  # the new take of img-01
    later = evaluate(defs, instance, cursor=again.cursor or result.cursor)
    assert later.skip_reason is not None and "img-03" in later.skip_reason.skip_message
    assert "img-01" not in later.skip_reason.skip_message
    engine.dispose()
