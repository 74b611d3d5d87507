"""Hub state without sockets: numbering, channels, latest state, replay, gaps and de-duplication."""

from __future__ import annotations

import json

from asset_pipeline.hub.state import HubState
from asset_pipeline.progress.messages import PUBLISHED, ProgressEvent, RunEvent


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


def test_partitions_and_runs_are_capped_forgetting_finished_ones_first() -> None:
    state = HubState(max_partitions=3, max_runs=2)
    state.accept(event("active", run_id="r-active"))
    for index in range(10):
        state.accept(event(f"done-{index}", run_id=f"r{index}", status="completed"))
    assert list(state.partitions) == ["active", "done-8", "done-9"] and state.partitions.evicted == 8
    assert len(state.runs) == 2
    for index in range(5):  # no finished ones left to forget: the least recently updated goes
        state.accept(event(f"busy-{index}"))
    assert list(state.partitions) == ["busy-2", "busy-3", "busy-4"]


def test_check_results_per_partition_are_bounded() -> None:
    state = HubState()
    for index in range(100):
        state.accept(RunEvent(event_id=f"r1:{index}", run_id="r1", event_type="ASSET_CHECK_EVALUATION",
                              partition_key="a", check_name=f"check-{index}", passed=True))
    checks = state.partitions["a"]["checks"]
    assert len(checks) == 20 and "check-99" in checks and "check-0" not in checks


def test_a_monitor_snapshot_holds_counts_and_only_the_most_recent_partitions() -> None:
    state = HubState(snapshot_partitions=3)
    for index in range(10):
        state.accept(event(f"k{index}", status="completed" if index % 2 else "generating"))
    snapshot = state.snapshot("monitor", connections=0)
    assert [p["partition_key"] for p in snapshot["partitions"]] == ["k7", "k8", "k9"]
    assert snapshot["partitions_total"] == 10 and snapshot["counts"] == {"generating": 5, "completed": 5}


def test_only_seqs_this_process_issued_replay_and_numbering_starts_from_the_clock() -> None:
    first, second = HubState(), HubState()
    assert first.hub_id != second.hub_id and second.seq >= first.seq > 1_700_000_000_000_000
    start = second.seq
    second.accept(event("a"))
    assert second.replay("monitor", start, second.hub_id) is not None
    assert second.replay("monitor", start, first.hub_id) is None  # another process's seq
    assert second.replay("monitor", start - 1) is None  # before this process
    assert second.replay("monitor", start + 2) is None  # not issued yet
