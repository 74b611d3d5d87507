"""Progress publishing: a run's images reach a real hub in order; a hub that is down or stuck
never blocks or fails generation, and the outage is logged once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from asset_pipeline.progress.messages import ProgressEvent
from asset_pipeline.progress.publisher import BufferedPublisher
from asset_pipeline.resources.progress_hub import HubUnavailable, ProgressHub
from asset_pipeline_testing.helpers import materialize, pipeline_defs
from asset_pipeline_testing.hub_process import running_hub
from asset_pipeline_testing.serving import free_port


def test_a_runs_progress_reaches_the_hub_pending_generating_then_completed(
    catalog_path: Path, data_dir: Path, instance
) -> None:
    with running_hub() as hub:
        defs = pipeline_defs(catalog_path, data_dir, hub_url=hub.url)
        result = materialize(defs, instance, first="img-00", last="img-02")
        assert result.success
        messages = [json.loads(text) for text in hub.hub.state.history()]
    for key in ("img-00", "img-01", "img-02"):
        statuses = [m["status"] for m in messages if m.get("partition_key") == key]
        assert statuses == ["pending", "generating", "completed"], statuses
        [done] = [m for m in messages if m.get("partition_key") == key and m["status"] == "completed"]
        assert done["run_id"] == result.run_id and done["path"].endswith(f"images/{key}.png")
        assert done["percentage"] == 100.0 and done["cost_usd"] == 0.0
    again = materialize(defs, instance, first="img-00", last="img-00")
    assert again.success  # the hub is gone now: cache hits still materialize


def test_a_hub_that_is_down_is_logged_once_and_never_fails_the_run(
    catalog_path: Path, data_dir: Path, instance
) -> None:
    defs = pipeline_defs(catalog_path, data_dir, hub_url=f"http://127.0.0.1:{free_port()}")
    result = materialize(defs, instance, first="img-00", last="img-05")
    assert result.success
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    outages = [message for message in logged if "cannot deliver to the progress hub" in message]
    assert len(outages) == 1, logged
    assert "generation goes on" in outages[0]


def test_publish_never_blocks_and_counts_what_it_drops() -> None:
    stuck, problems = threading.Event(), []
    publisher = BufferedPublisher(lambda batch: stuck.wait(), buffer_size=10, batch_max=1, on_problem=problems.append)
    for index in range(1000):  # the sender is stuck on its first batch: this must still return at once
        publisher.publish({"n": index})
    assert publisher.dropped in (989, 990)  # the buffer holds 10, the stuck batch at most 1
    assert len(problems) == 1 and "progress buffer full" in problems[0]
    stuck.set()
    publisher.close()


def test_an_outage_is_reported_once_and_delivery_resumes() -> None:
    delivered, problems, failing = [], [], threading.Event()
    failing.set()

    def post(batch: list) -> None:
        if failing.is_set():
            raise ConnectionError("refused")
        delivered.extend(batch)

    publisher = BufferedPublisher(post, retry_after_s=0.01, on_problem=problems.append)
    for index in range(5):
        publisher.publish({"n": index})
    deadline = time.monotonic() + 5
    while publisher.dropped < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    failing.clear()
    publisher.publish({"n": "after"})
    publisher.close()
    assert delivered == [{"n": "after"}] and publisher.dropped == 5
    assert len(problems) == 1 and "ConnectionError" in problems[0]


def test_send_raises_when_the_hub_is_unreachable() -> None:
    with pytest.raises(HubUnavailable, match="unreachable"):
        ProgressHub(url=f"http://127.0.0.1:{free_port()}").send(
            [ProgressEvent(partition_key="a", status="pending")])
