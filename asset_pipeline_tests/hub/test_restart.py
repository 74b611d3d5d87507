"""A hub restart (two `asset-pipeline hub` processes in a row on one port) with a real client resuming.

The second process numbers above the first and has another `hub_id`; a client resuming with the
old `after_seq` (with or without the old `hub_id`), or with a seq the hub never issued, gets a gap
snapshot holding what happened meanwhile, and resuming from that snapshot's seq replays normally.
A limit variable that is not a number stops the hub with one line naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from websockets.sync.client import connect

from asset_pipeline_testing.hub_process import (
    hub_process,
    progress,
    receive,
    receive_until,
)
from asset_pipeline_testing.serving import free_port


def test_a_client_resuming_after_a_restart_gets_a_gap_snapshot_then_resumes_normally() -> None:
    port = free_port()
    with hub_process(port) as first, connect(first.ws_url + "/ws/monitor", open_timeout=10) as client:
        old_hub_id = receive(client)["hub_id"]
        receive_until(client, "snapshot")
        httpx.post(first.url + "/api/events", json=[progress("before", percentage=p) for p in (10, 20, 30)])
        old_seq = receive_until(client, "progress")["seq"]
    with hub_process(port) as second:
        httpx.post(second.url + "/api/events", json=progress("while-away", status="completed", percentage=100))
        for query in (f"after_seq={old_seq}&hub_id={old_hub_id}", f"after_seq={old_seq}",
                      f"after_seq={old_seq + 10**12}"):  # the old hub's seq; with its id; a seq never issued
            with connect(second.ws_url + "/ws/monitor?" + query, open_timeout=10) as client:
                connection = receive(client)
                assert connection["type"] == "connection" and connection["hub_id"] != old_hub_id
                snapshot = receive(client)
                assert snapshot["type"] == "snapshot" and snapshot["gap"] is True, query
                assert snapshot["hub_id"] == connection["hub_id"] and snapshot["seq"] > old_seq
                assert [p["partition_key"] for p in snapshot["partitions"]] == ["while-away"]
        assert second.status()["gap_snapshots"] == 3

        resume_from = snapshot["seq"]
        httpx.post(second.url + "/api/events", json=progress("later", percentage=5))
        with connect(f"{second.ws_url}/ws/monitor?after_seq={resume_from}&hub_id={snapshot['hub_id']}",
                     open_timeout=10) as client:
            receive(client)
            replayed = receive(client)
            assert (replayed["type"], replayed["partition_key"]) == ("progress", "later")
        assert second.status()["gap_snapshots"] == 3


def test_a_bad_limit_variable_stops_the_hub_naming_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME="/nonexistent", ASSET_PIPELINE_HUB_MAX_PARTITIONS="lots")
    result = subprocess.run([str(Path(sys.executable).parent / "asset-pipeline"), "hub", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ASSET_PIPELINE_HUB_MAX_PARTITIONS: expected a whole number from 1 to 999999999, got 'lots'" in result.stderr
