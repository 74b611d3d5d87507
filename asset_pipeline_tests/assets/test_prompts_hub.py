"""The hub sees a `prompt` stage before generation: a range run over `prompts` and `images` publishes,
per partition, the prompt being written (stage `prompt`) and then the image's usual progress."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline_testing.briefs import write_brief_catalog
from asset_pipeline_testing.helpers import pipeline_defs
from asset_pipeline_testing.hub_process import running_hub


def test_the_prompt_stage_comes_before_generation(tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_brief_catalog(tmp_path / "briefs.yaml")
    with running_hub() as hub:
        defs = pipeline_defs(catalog, data_dir, hub_url=hub.url)
        result = dg.materialize(list(defs.assets or []), selection=[PROMPTS, IMAGES], instance=instance,
                                resources=defs.resources, raise_on_error=False,
                                tags={"dagster/asset_partition_range_start": "brief-000",
                                      "dagster/asset_partition_range_end": "brief-002"})
        assert result.success
        messages = [json.loads(text) for text in hub.hub.state.history()]
    for key in ("brief-000", "brief-001", "brief-002"):
        steps = [(m["status"], m.get("stage")) for m in messages if m.get("partition_key") == key]
        assert steps[:2] == [("generating", "prompt"), ("pending", "prompt")], steps
        assert [status for status, _ in steps[2:]] == ["pending", "generating", "completed"], steps
        [ready] = [m for m in messages if m.get("partition_key") == key and m.get("stage") == "prompt"
                   and m["status"] == "pending"]
        assert ready["message"] == "prompt ready (template)" and ready["run_id"] == result.run_id
