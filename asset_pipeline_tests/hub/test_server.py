"""The hub on a real loopback port with real WebSocket clients.

Routing, ordering, resume after a forced disconnect, gap snapshots, slow clients, bad frames,
tokens on both sides, path validation, status and images.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asset_pipeline.hub.server import HubConfig
from asset_pipeline_testing.hub_process import (
    progress,
    receive,
    receive_until,
    running_hub,
    stalled_subscriber,
)


def test_a_subscriber_gets_connection_then_snapshot_then_its_channels_events_in_order() -> None:
    with running_hub() as hub:
        hub.publish(progress("a", percentage=5))
        with hub.subscribe("/ws/partitions/b") as only_b, hub.subscribe("/ws/runs/run-2") as run_2, \
                hub.subscribe() as monitor:
            assert [receive(monitor)["type"], receive(monitor)["type"]] == ["connection", "snapshot"]
            assert receive(only_b)["channel"] == "partitions/b"
            assert receive(only_b)["partition"] is None
            receive(run_2), receive(run_2)
            hub.publish([progress("b", percentage=p) for p in (10, 20, 30)] + [progress("c", run_id="run-2")])
            seen = [receive(monitor) for _ in range(4)]
            assert [m.get("percentage") for m in seen] == [10, 20, 30, None]
            assert [m["seq"] for m in seen] == sorted(m["seq"] for m in seen)
            assert [receive(only_b)["percentage"] for _ in range(3)] == [10, 20, 30]
            assert receive(run_2)["partition_key"] == "c"
            with pytest.raises(TimeoutError):
                only_b.recv(timeout=0.3)  # nothing from partitions a or c


def test_resume_after_a_forced_disconnect_loses_nothing() -> None:
    with running_hub() as hub:
        with hub.subscribe() as client:
            receive(client)
            last_seq = receive(client)["seq"]
            hub.publish([progress("a", percentage=1)])
            last_seq = receive_until(client, "progress")["seq"]
        hub.publish([progress("a", percentage=p) for p in range(2, 40)])  # while disconnected
        with hub.subscribe(f"/ws/monitor?after_seq={last_seq}") as back:
            assert receive(back)["type"] == "connection"
            replayed = [receive(back) for _ in range(38)]
            assert [m["percentage"] for m in replayed] == list(range(2, 40))
        with hub.subscribe() as late:  # the message form of resume, after a snapshot
            receive(late), receive(late)
            late.send(json.dumps({"type": "resume", "after_seq": last_seq}))
            assert [receive(late)["percentage"] for _ in range(38)] == list(range(2, 40))


def test_a_seq_older_than_the_history_gets_a_gap_snapshot() -> None:
    with running_hub(HubConfig(history_size=5)) as hub:
        hub.publish([progress("a", percentage=p) for p in range(20)])
        with hub.subscribe("/ws/monitor?after_seq=1") as client:
            receive(client)
            snapshot = receive(client)
            assert snapshot["type"] == "snapshot" and snapshot["gap"] is True
            assert snapshot["partitions"][0]["percentage"] == 19


def test_a_client_that_stops_reading_is_disconnected_without_slowing_the_others() -> None:
    with running_hub(HubConfig(client_queue_size=20)) as hub, stalled_subscriber(hub.url) as stalled:
        with hub.subscribe() as fast:
            receive(fast), receive(fast)
            big = "x" * 1900
            for _batch in range(400):  # ~7.6 MB in bursts of 10 that a reading client keeps up with
                hub.publish([progress("a", percentage=1, message=big) for _ in range(10)])
                for _ in range(10):
                    receive_until(fast, "progress")
            deadline = time.monotonic() + 10
            while hub.hub.status()["slow_clients_disconnected"] < 1:
                assert time.monotonic() < deadline, hub.hub.status()
                time.sleep(0.05)
            assert hub.hub.status()["connections"] == 1  # the reader is still served
        assert stalled.fileno() > 0


def test_malformed_unknown_and_oversized_frames() -> None:
    with running_hub() as hub:
        with hub.subscribe() as client, hub.subscribe() as bystander:
            receive(client), receive(client), receive(bystander), receive(bystander)
            client.send("{not json")
            error = receive(client)
            assert (error["type"], error["code"]) == ("error", "malformed_json")
            client.send(json.dumps({"type": "subscribe-everything"}))
            assert receive(client)["code"] == "unknown_type"
            client.send(json.dumps({"type": "ping"}))
            assert receive(client)["type"] == "pong"
            client.send("x" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                receive(client)
            assert closed.value.rcvd.code == 1009
            hub.publish(progress("a"))
            assert receive_until(bystander, "progress")["partition_key"] == "a"  # everyone else is served


def test_bad_paths_are_refused_with_an_error_and_policy_close() -> None:
    with running_hub() as hub:
        with pytest.raises(InvalidStatus):  # a separator never reaches a route
            hub.subscribe("/ws/partitions/..%2Fetc").recv(timeout=5)
        for path in ("/ws/partitions/..", "/ws/runs/run%20id;drop", "/ws/partitions/UPPER", "/ws/partitions/a%00b"):
            with hub.subscribe(path) as client:
                message = receive(client)
                assert (message["type"], message["code"]) == ("error", "invalid_channel")
                with pytest.raises(ConnectionClosed) as closed:
                    receive(client)
                assert closed.value.rcvd.code == 1008
        rejected = hub.publish({"type": "progress", "partition_key": "../../etc", "status": "generating"})
        assert rejected.status_code == 422 and rejected.json()["problems"][0]["loc"][-1] == "partition_key"
        assert hub.publish({"type": "nonsense"}).status_code == 422
        assert httpx.post(hub.url + "/api/events", content=b"{oops").status_code == 400


def test_a_token_is_required_from_publishers_and_subscribers() -> None:
    with running_hub(HubConfig(token="hub-s3cret")) as hub:
        assert hub.publish(progress("a")).status_code == 401
        assert hub.publish(progress("a"), token="wrong").status_code == 401
        assert hub.publish(progress("a"), token="hub-s3cret").json()["accepted"] == 1
        with pytest.raises(InvalidStatus):
            hub.subscribe().recv(timeout=5)
        with pytest.raises(InvalidStatus):
            hub.subscribe("/ws/monitor?token=wrong").recv(timeout=5)
        with hub.subscribe("/ws/monitor?token=hub-s3cret") as by_query:
            assert receive(by_query)["type"] == "connection"
        with hub.subscribe(additional_headers={"Authorization": "Bearer hub-s3cret"}) as by_header:
            assert receive(by_header)["type"] == "connection"
        assert httpx.get(hub.url + "/api/status").status_code == 401
        assert httpx.get(hub.url + "/healthz").json() == {"status": "ok"}
        assert "hub-s3cret" not in httpx.get(hub.url + "/").text


def test_pings_are_sent_and_silent_clients_dropped() -> None:
    with running_hub(HubConfig(ping_interval_s=0.2)) as hub:
        with hub.subscribe() as client:
            receive(client), receive(client)
            assert receive(client)["type"] == "ping"
            client.send(json.dumps({"type": "pong"}))
            assert receive(client, timeout=2)["type"] == "ping"
            with pytest.raises(ConnectionClosed) as closed:  # stop answering
                while True:
                    client.recv(timeout=3)
            assert closed.value.rcvd.code == 1008


def test_status_counts_and_images_are_served_from_inside_the_store(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.png").write_bytes(b"outside")
    with running_hub(HubConfig(image_root=tmp_path)) as hub:
        with hub.subscribe() as client:
            receive(client), receive(client)
            hub.publish([progress("a"), progress("b")])
            receive(client), receive(client)
            status = httpx.get(hub.url + "/api/status").json()
            assert status["connections"] == 1 and status["channels"] == {"monitor": 1}
            assert status["events_received"] == 2 and status["events_delivered"] >= 4
        assert httpx.get(hub.url + "/images/a").content == b"\x89PNG fake"
        assert httpx.get(hub.url + "/images/..%2Fsecret").status_code == 404
        assert httpx.get(hub.url + "/images/nope").status_code == 404
