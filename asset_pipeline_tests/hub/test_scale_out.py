"""Several `asset-pipeline hub` processes sharing one real Redis act as one hub: an event published
to either reaches subscribers of both in one order with one seq; a client resumes on the other
instance with `after_seq` and loses nothing; an instance started later loads the shared history;
a run event re-sent to the other instance is delivered once; a Redis that cannot be used stops the
hub with an error naming ASSET_PIPELINE_REDIS_URL and never showing the password."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
import redis
from websockets.sync.client import connect

from asset_pipeline_testing.hub_process import HubProcess, hub_process, progress, receive, receive_until
from asset_pipeline_testing.serving import free_port

REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    name = f"test-hub-scaleout:{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _publish(hub: HubProcess, events: list[dict]) -> dict:
    response = httpx.post(hub.url + "/api/events", json=events, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _shared(prefix: str) -> dict[str, str]:
    return {"ASSET_PIPELINE_REDIS_URL": REDIS_URL, "ASSET_PIPELINE_HUB_REDIS_PREFIX": prefix}


def test_events_published_to_either_instance_reach_both_in_one_order_with_one_seq(prefix: str) -> None:
    with hub_process(**_shared(prefix)) as a, hub_process(**_shared(prefix)) as b:
        with connect(a.ws_url + "/ws/monitor", open_timeout=10) as on_a, \
                connect(b.ws_url + "/ws/runs/run-1", open_timeout=10) as on_b:
            hello_a, hello_b = receive(on_a), receive(on_b)
            assert hello_a["hub_id"] == hello_b["hub_id"]
            receive(on_a), receive(on_b)  # snapshots
            for index in range(20):
                _publish(a if index % 2 else b, [progress("a", percentage=index)])
            seen_a = [receive_until(on_a, "progress") for _ in range(20)]
            seen_b = [receive_until(on_b, "progress") for _ in range(20)]
            assert [m["percentage"] for m in seen_a] == [m["percentage"] for m in seen_b] == list(range(20))
            assert [m["seq"] for m in seen_a] == [m["seq"] for m in seen_b]
            assert [m["seq"] for m in seen_a] == sorted({m["seq"] for m in seen_a})
            assert [m["timestamp"] for m in seen_a] == [m["timestamp"] for m in seen_b]
            assert a.status()["shared"] and b.status()["seq"] == a.status()["seq"] == seen_a[-1]["seq"]


def test_a_client_moving_to_another_instance_resumes_and_loses_nothing(prefix: str) -> None:
    with hub_process(**_shared(prefix)) as a:
        with connect(a.ws_url + "/ws/monitor", open_timeout=10) as client:
            hub_id = receive(client)["hub_id"]
            receive(client)
            _publish(a, [progress("a", percentage=0)])
            last_seq = receive_until(client, "progress")["seq"]
        _publish(a, [progress("a", percentage=p) for p in range(1, 20)])  # while the client is away
        with hub_process(**_shared(prefix)) as b:  # started after: it loads the shared history
            _publish(b, [progress("b", percentage=p) for p in range(20, 30)])
            with connect(f"{b.ws_url}/ws/monitor?after_seq={last_seq}&hub_id={hub_id}", open_timeout=10) as back:
                assert receive(back)["type"] == "connection"
                replayed = [receive(back) for _ in range(29)]
                assert [m["percentage"] for m in replayed] == list(range(1, 30))
                assert [m["seq"] for m in replayed] == list(range(last_seq + 1, last_seq + 30))
            snapshot = httpx.get(b.url + "/api/partitions", timeout=10).json()
            assert {p["partition_key"]: p["percentage"] for p in snapshot["partitions"]} == {"a": 19, "b": 29}


def test_a_run_event_sent_to_both_instances_is_delivered_once(prefix: str) -> None:
    event = {"type": "run_event", "event_id": "run-1:77", "run_id": "run-1", "event_type": "PIPELINE_START"}
    with hub_process(**_shared(prefix)) as a, hub_process(**_shared(prefix)) as b:
        with connect(a.ws_url + "/ws/monitor", open_timeout=10) as client:
            receive(client), receive(client)
            assert _publish(a, [event])["accepted"] == 1
            assert _publish(b, [event]) == {"accepted": 0, "duplicates": 1, "seq": 0}
            _publish(b, [progress("a")])
            assert [receive_until(client, kind)["type"] for kind in ("run_event", "progress")] == ["run_event", "progress"]


def test_entries_in_the_stream_that_no_hub_wrote_are_skipped(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    with hub_process(**_shared(prefix)) as a:
        with connect(a.ws_url + "/ws/monitor", open_timeout=10) as subscriber:
            receive(subscriber), receive(subscriber)
            for fields in ({"seq": "x", "ts": "t", "body": "{}"}, {"body": "[" * 10_000}, {"seq": str(2**60), "ts": "t",
                           "body": '{"type":"progress","partition_key":"a","status":"generating"}'},
                           {"seq": "1", "ts": "\xff", "body": '{"type":"progress","partition_key":"../x"}'}):
                client.xadd(f"{prefix}:events", fields)
            _publish(a, [progress("b", percentage=7)])
            assert receive_until(subscriber, "progress")["partition_key"] == "b"
        with hub_process(**_shared(prefix)) as late:  # loading the same garbage at start
            assert {p["partition_key"] for p in httpx.get(late.url + "/api/partitions").json()["partitions"]} == {"b"}
    client.close()


@pytest.mark.parametrize("url", [
    "redis://:pa55-hostile-s3cret@127.0.0.1:{port}/5",  # nothing listens there
    "redis://:pa55-hostile-s3cret@127.0.0.1:6379/5",  # a real Redis that has no password: AUTH fails
    "redis://:pa55-hostile-s3cret@127.0.0.1:notaport/5",
    "postgres://:pa55-hostile-s3cret@127.0.0.1:6379/5",
])
def test_a_redis_that_cannot_be_used_stops_the_hub_naming_the_variable_never_the_password(url: str) -> None:
    with pytest.raises(RuntimeError) as failed, hub_process(ASSET_PIPELINE_REDIS_URL=url.format(port=free_port())):
        pass
    message = str(failed.value)
    assert "ASSET_PIPELINE_REDIS_URL" in message, message
    # Either the settings refuse the scheme (the reason never repeats the URL) or the hub shows it masked.
    assert "pa55-hostile-s3cret" not in message and ("***" in message or "expected redis://" in message), message


def test_a_password_in_a_working_redis_url_never_reaches_the_log_or_the_status(prefix: str) -> None:
    url = "redis://default:pa55-hostile-s3cret@127.0.0.1:6379/5"  # Redis's passwordless default user takes any
    with hub_process(ASSET_PIPELINE_REDIS_URL=url, ASSET_PIPELINE_HUB_REDIS_PREFIX=prefix) as hub:
        _publish(hub, [progress("a")])
        status = httpx.get(hub.url + "/api/status", timeout=10).text
        hub.process.terminate()
        log = hub.process.communicate(timeout=20)[1].decode()
    assert "shared through Redis" in log
    assert "pa55-hostile-s3cret" not in log + status
