"""The hub's client protocol with no sockets: `HubSession` turns a connection request, client frames
and keep-alive ticks into the messages to send and whether to close (see hub/session.py)."""

from __future__ import annotations

import json

from asset_pipeline.hub.session import HubSession, channel_for
from asset_pipeline.hub.state import HubState
from asset_pipeline.progress.messages import PUBLISHED
from asset_pipeline_testing.hub_process import progress


def _state(*events: dict) -> HubState:
    state = HubState(history_size=100)
    for event in events:
        state.accept(PUBLISHED.validate_python(event))
    return state


def _decoded(texts: tuple[str, ...]) -> list[dict]:
    return [json.loads(text) for text in texts]


def test_open_sends_connection_then_snapshot() -> None:
    state = _state(progress("a", percentage=5))
    session = HubSession(state, *channel_for("monitor"), ping_interval_s=7)
    reply = session.open({}, connections=0)
    hello, snapshot = _decoded(reply.texts)
    assert reply.close is None
    assert (hello["type"], hello["channel"], hello["hub_id"], hello["ping_interval_s"]) == \
        ("connection", "monitor", state.hub_id, 7)
    assert snapshot["type"] == "snapshot" and snapshot["partitions"][0]["percentage"] == 5
    assert snapshot["connections"] == 1 and hello["seq"] < snapshot["seq"]


def test_open_with_after_seq_replays_only_the_channel_and_a_foreign_hub_gets_a_gap_snapshot() -> None:
    state = _state(progress("a", percentage=1))
    after = state.seq
    for event in (progress("b", percentage=2), progress("a", percentage=3)):
        state.accept(PUBLISHED.validate_python(event))
    session = HubSession(state, *channel_for("partitions", "a"))
    replayed = _decoded(session.open({"after_seq": str(after), "hub_id": state.hub_id}, connections=0).texts)
    assert [m["type"] for m in replayed] == ["connection", "progress"] and replayed[1]["percentage"] == 3
    foreign = _decoded(HubSession(state, "monitor").open({"after_seq": str(after), "hub_id": "beef"},
                                                          connections=0).texts)
    assert foreign[1]["type"] == "snapshot" and foreign[1]["gap"] is True


def test_invalid_channel_bad_after_seq_and_the_connection_limit_are_refused_with_a_close_code() -> None:
    state = _state()
    bad_channel = HubSession(state, *channel_for("runs", "run id;drop")).open({}, connections=0)
    assert _decoded(bad_channel.texts)[0]["code"] == "invalid_channel" and bad_channel.close.code == 1008
    for garbage in ("-1", "1e400", "9" * 40, "NaN", "0x10"):
        reply = HubSession(state, "monitor").open({"after_seq": garbage}, connections=0)
        assert _decoded(reply.texts)[0]["code"] == "invalid" and reply.close.code == 1008, garbage
    full = HubSession(state, "monitor", max_connections=3).open({}, connections=3)
    assert _decoded(full.texts)[0]["code"] == "too_many_connections" and full.close.code == 1013
    assert HubSession(state, "monitor", max_connections=3).open({}, connections=2).close is None


def test_frames_ping_resume_garbage_and_oversize() -> None:
    state = _state(progress("a", percentage=1))
    event_seq = state.seq
    session = HubSession(state, "monitor")
    session.open({}, connections=0)
    assert _decoded(session.receive('{"type":"ping"}', connections=1).texts)[0]["type"] == "pong"
    assert session.receive('{"type":"pong"}', connections=1).texts == ()
    for text, code in (("{not json", "malformed_json"), ('{"type":"everything"}', "unknown_type"),
                       ('{"type":"resume","after_seq":-5}', "invalid"), ("[" * 5000, "malformed_json")):
        reply = session.receive(text, connections=1)
        assert _decoded(reply.texts)[0]["code"] == code and reply.close is None, text
    resumed = _decoded(session.receive(json.dumps({"type": "resume", "after_seq": event_seq - 1}),
                                       connections=1).texts)
    assert [m["percentage"] for m in resumed] == [1]
    too_big = session.receive("x" * (64 * 1024 + 1), connections=1)
    assert too_big.close.code == 1009


def test_a_replay_longer_than_the_client_queue_closes_with_try_again_later() -> None:
    state = _state()
    after = state.seq
    for percentage in range(10):
        state.accept(PUBLISHED.validate_python(progress("a", percentage=percentage)))
    reply = HubSession(state, "monitor", max_replay=5).open({"after_seq": str(after)}, connections=0)
    assert reply.too_many and reply.close.code == 1013 and _decoded(reply.texts)[0]["type"] == "connection"


def test_tick_pings_and_closes_a_silent_client() -> None:
    session = HubSession(_state(), "monitor", ping_interval_s=10, now=100.0)
    assert _decoded(session.tick(105.0).texts)[0]["type"] == "ping"
    session.receive('{"type":"pong"}', connections=1, now=115.0)
    assert session.tick(130.0).close is None
    assert session.tick(136.0).close.code == 1008


def test_a_shared_state_numbers_direct_messages_with_the_last_event_seq() -> None:
    state = HubState()
    state.restart_at(41, "abc123")
    assert state.accept(PUBLISHED.validate_python(progress("a")), seq=42, timestamp="2026-01-01T00:00:00.000Z").seq == 42
    assert state.accept(PUBLISHED.validate_python(progress("a")), seq=42) is None  # read twice: applied once
    hello, snapshot = _decoded(HubSession(state, "monitor").open({}, connections=0).texts)
    assert hello["seq"] == snapshot["seq"] == 42 and hello["hub_id"] == "abc123"
    assert [m["seq"] for m in _decoded(HubSession(state, "monitor").open({"after_seq": "41"}, connections=0).texts)[1:]] \
        == [42]
