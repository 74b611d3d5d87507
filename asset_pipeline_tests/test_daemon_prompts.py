"""A UI backfill selecting `prompts` and `images` over a range, through the real webserver (GraphQL)
and `dagster-daemon`: one run, as for `images` alone, that writes every prompt and then renders
every image of the range."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionsFilter

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline.retry_selection import RETRY_TAG
from asset_pipeline_testing.briefs import write_brief_catalog
from asset_pipeline_testing.dagster_stack import BIN, DagsterStack, dagster_stack

PROJECT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    root = tmp_path_factory.mktemp("daemon_prompts")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.sqlite.yaml", home / "dagster.yaml")
    catalog = write_brief_catalog(root / "briefs.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), ASSET_PIPELINE_CATALOG=str(catalog), ASSET_PIPELINE_DATA_DIR=str(root / "data"))
    with dagster_stack(root, env) as running:
        yield running


def test_the_failed_images_sensor_writes_the_missing_prompt_and_renders_the_image(stack: DagsterStack) -> None:
    """An image run alone for a brief that has no prompt yet fails; the sensor, turned on as the UI
    does, backfills that partition with `prompts` and `images`, and the daemon's run renders it."""
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "asset_pipeline_testing.daemon_location", "--select",
         "images", "--partition", "brief-003"],
        cwd=PROJECT, env=stack.env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode != 0 and "materialize `prompts` for this partition first" in done.stdout + done.stderr
    state_id = stack.start_sensor("failed_images_sensor")

    def requested_backfill():  # type: ignore[no-untyped-def]
        with stack.instance() as instance:
            found = instance.get_backfills(filters=BulkActionsFilter(tags={RETRY_TAG: "failed_images_sensor"}))
            return found[0] if found else None

    backfill = stack.wait_for("the sensor's backfill", requested_backfill)
    stack.stop_sensor(state_id)
    assert set(backfill.asset_selection) == {PROMPTS, IMAGES}
    [run] = stack.wait_for_backfill_runs(backfill.backfill_id, [("brief-003", "brief-003")])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    with stack.instance() as instance:
        prompts, images = latest_materializations(instance, PROMPTS), latest_materializations(instance, IMAGES)
    assert prompts["brief-003"].run_id == images["brief-003"].run_id == run.run_id


def test_a_ui_backfill_of_prompts_and_images_is_one_run(stack: DagsterStack) -> None:
    keys = ["brief-000", "brief-001", "brief-002", "brief-003", "written-000"]
    backfill_id = stack.launch_backfill(keys, assetSelection=[{"path": PROMPTS.path}, {"path": IMAGES.path}])
    [run] = stack.wait_for_backfill_runs(backfill_id, [("brief-000", "written-000")])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    with stack.instance() as instance:
        prompts, images = latest_materializations(instance, PROMPTS), latest_materializations(instance, IMAGES)
    assert sorted(prompts) == sorted(images) == keys
    assert {record.run_id for record in [*prompts.values(), *images.values()]} == {run.run_id}
