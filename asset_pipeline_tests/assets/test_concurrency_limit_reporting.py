"""The shared adaptive in-flight limit is reported: a paid run logs it in the run log and every
progress message it sends to a real hub carries `concurrency_limit` (issue 16); the provider's 429s
lower it for the next run too."""

import json
from pathlib import Path

from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_testing.hub_process import running_hub


def entries(count: int) -> list[dict]:
    return [{"id": f"img-{i:02d}", "category": "icon", "prompt": f"a test icon {i}", "width": 512, "height": 512,
             "seed": i} for i in range(count)]


def test_the_limit_reaches_the_run_log_and_the_hub(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", entries(6))
    with running_hub() as hub:
        defs = pipeline_defs(catalog, data_dir, backend="replicate", hub_url=hub.url, provider_max_concurrency=6)
        result = materialize(defs, instance, first="img-00", last="img-02")
        assert result.success
        messages = [json.loads(text) for text in hub.hub.state.history()]
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("provider in-flight limit now 6" in line for line in logged), logged
    completed = [m for m in messages if m.get("status") == "completed"]
    assert len(completed) == 3 and all(m["concurrency_limit"] == 6 for m in completed)

    fake_replicate.fail_creates = [429, 429, 429]  # sustained push-back: the next run starts lower
    again = materialize(pipeline_defs(catalog, data_dir, backend="replicate", hub_enabled=False,
                                      provider_max_concurrency=6), instance, first="img-03", last="img-05")
    assert again.success
    logged = [entry.user_message for entry in instance.all_logs(again.run_id)]
    assert any("provider in-flight limit now 3" in line for line in logged), logged
