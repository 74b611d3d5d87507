"""Hub state without sockets: numbering, channels, latest state, replay, gaps and de-duplication."""

from __future__ import annotations

import json

from asset_pipeline.hub.messages import PUBLISHED, ProgressEvent, RunEvent
from asset_pipeline.hub.state import HubState


def event(key: str, run_id: str = "r1", **fields) -> ProgressEvent:
    return ProgressEvent(run_id=run_id, partition_key=key, status=fields.pop("status", "generating"), **fields)


def test_every_event_gets_the_next_seq_a_timestamp_and_its_channels() -> None:
    state = HubState()
    start = state.seq
    first = state.accept(event("a", percentage=10))
    second = state.accept(event("b", run_id="r2"))
    assert (first.seq, second.seq) == (start + 1, start + 2)
    assert first.channels == ("monitor", "runs/r1", "partitions/a")
    body = json.loads(first.text)
    assert body["type"] == "progress" and body["timestamp"].endswith("Z") and body["percentage"] == 10
    fixed = {"run_id", "partition_key", "status", "stage", "current_step", "total_steps", "percentage", "elapsed_s",
             "eta_s", "cost_usd", "message"}
    assert fixed <= body.keys() and body["eta_s"] is None  # DESIGN.md's progress fields, always present


def test_snapshots_hold_the_latest_state_per_channel() -> None:
    state = HubState()
    start = state.seq
    state.accept(event("a", percentage=10))
    state.accept(event("a", percentage=60, stage="base"))
    state.accept(event("b", status="failed", message="boom"))
    state.accept(RunEvent(event_id="r1:5", run_id="r1", event_type="PIPELINE_START", job_name="__ASSET_JOB"))
    monitor = state.snapshot("monitor", connections=3)
    assert monitor["counts"] == {"generating": 1, "failed": 1} and monitor["connections"] == 3
    assert monitor["active_runs"] == ["r1"] and monitor["seq"] == start + 5
    [a] = [p for p in monitor["partitions"] if p["partition_key"] == "a"]
    assert (a["percentage"], a["stage"]) == (60, "base")
    assert state.snapshot("partitions/b", connections=0)["partition"]["message"] == "boom"
    assert [p["partition_key"] for p in state.snapshot("runs/r1", connections=0)["partitions"]] == ["a", "b"]


def test_replay_returns_only_the_channels_messages_after_the_seq() -> None:
    state = HubState(seq=0)
    for key in ("a", "b", "a", "c"):
        state.accept(event(key))
    replayed = [json.loads(text)["seq"] for text in state.replay("partitions/a", 0)]
    assert replayed == [1, 3]
    assert [json.loads(text)["seq"] for text in state.replay("monitor", 2)] == [3, 4]


def test_a_seq_older_than_the_history_is_a_gap() -> None:
    state = HubState(history_size=3, seq=0)
    for index in range(5):
        state.accept(event(f"k{index}"))
    assert state.replay("monitor", 1) is None
    assert [json.loads(text)["seq"] for text in state.replay("monitor", 2)] == [3, 4, 5]
    assert state.snapshot("monitor", connections=0, gap=True)["gap"] is True


def test_run_events_seen_before_are_ignored_and_materializations_complete_partitions() -> None:
    state = HubState()
    materialized = PUBLISHED.validate_python({
        "type": "run_event", "event_id": "r1:9", "run_id": "r1", "event_type": "ASSET_MATERIALIZATION",
        "partition_key": "a", "path": "/data/images/a.png", "cost_usd": 0.003,
    })
    assert state.accept(materialized) is not None
    assert state.accept(materialized) is None and state.counters.duplicates_ignored == 1
    assert state.partitions["a"]["status"] == "completed" and state.partitions["a"]["cost_usd"] == 0.003
