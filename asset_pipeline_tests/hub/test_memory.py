"""The hub's memory stays bounded against hostile publishers, measured on a real `asset-pipeline hub`.

Oversized POST bodies, declared or chunked, are refused with 413 while they stream (never
buffered: the hub's RSS barely moves); 100,000 made-up partition keys (and as many run ids) leave
at most the configured number in memory, a new monitor subscriber gets a bounded snapshot, and the
partitions it leaves out are paged through `GET /api/partitions`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from asset_pipeline_testing.hub_process import HubProcess, hub_process, receive

MAX_PARTITIONS, MAX_RUNS, SNAPSHOT_PARTITIONS = 5000, 100, 300
MIB = 1 << 20


@pytest.fixture(scope="module")
def hub() -> Iterator[HubProcess]:
    with hub_process(ASSET_PIPELINE_HUB_MAX_PARTITIONS=str(MAX_PARTITIONS), ASSET_PIPELINE_HUB_MAX_RUNS=str(MAX_RUNS),
                     ASSET_PIPELINE_HUB_SNAPSHOT_PARTITIONS=str(SNAPSHOT_PARTITIONS)) as running:
        yield running


def test_a_chunked_body_past_the_limit_is_refused_while_it_streams(hub: HubProcess) -> None:
    before = hub.rss_mib()
    chunk = b" " * MIB

    def body() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for _ in range(96):
            yield chunk

    response = httpx.post(hub.url + "/api/events", content=body(), timeout=60)
    assert response.status_code == 413 and "4194304 bytes" in response.json()["error"]
    assert hub.peak_rss_mib() - before < 24, (before, hub.peak_rss_mib())  # 96 MiB sent, never held


def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_read(hub: HubProcess) -> None:
    host, port = hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /api/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {600 * MIB}\r\n\r\n".encode() + b"[")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")  # without the 600 MB ever being sent


def test_a_body_at_the_limit_still_works(hub: HubProcess) -> None:
    events = [{"type": "progress", "partition_key": "ok", "status": "generating", "message": "m" * 1900}] * 2000
    body = json.dumps(events).encode()
    assert 3 * MIB < len(body) < 4 * MIB
    response = httpx.post(hub.url + "/api/events", content=body, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == 2000


def test_made_up_keys_stay_within_the_caps_and_a_new_subscriber_gets_a_bounded_snapshot(hub: HubProcess) -> None:
    before = hub.rss_mib()
    with httpx.Client(base_url=hub.url, timeout=30) as http:
        for batch in range(100):
            events = [{"type": "progress", "run_id": f"r{batch}-{index}", "partition_key": f"fake-{batch}-{index}",
                       "status": "generating" if index % 2 else "completed", "message": "x" * 100}
                      for index in range(1000)]
            assert http.post("/api/events", json=events).status_code == 200
    status = hub.status()
    assert status["partitions_known"] == MAX_PARTITIONS and status["runs_known"] == MAX_RUNS
    assert status["partitions_forgotten"] >= 100_000 - MAX_PARTITIONS
    assert hub.rss_mib() - before < 80, (before, hub.rss_mib())  # unbounded, this was ~380 MB

    with connect(hub.ws_url + "/ws/monitor", open_timeout=10) as client:
        assert receive(client)["type"] == "connection"
        text = client.recv(timeout=10)
    snapshot = json.loads(text)
    assert snapshot["type"] == "snapshot" and len(text) < 256 * 1024
    assert len(snapshot["partitions"]) == SNAPSHOT_PARTITIONS and snapshot["partitions_total"] == MAX_PARTITIONS
    assert snapshot["partitions"][-1]["partition_key"] == "fake-99-999"  # the most recent ones
    assert sum(snapshot["counts"].values()) == MAX_PARTITIONS
    assert len(snapshot["runs"]) <= 50 and len(snapshot["active_runs"]) <= 100

    keys: list[str] = []
    after = ""
    while after is not None:
        page = httpx.get(hub.url + "/api/partitions", params={"after": after, "limit": 1000}).json()
        keys += [entry["partition_key"] for entry in page["partitions"]]
        after = page["next_after"]
    assert len(keys) == len(set(keys)) == MAX_PARTITIONS and keys == sorted(keys)
    assert httpx.get(hub.url + "/api/partitions", params={"limit": 5000}).status_code == 400
    assert httpx.get(hub.url + "/api/partitions", params={"limit": "9" * 5000}).status_code == 400


def test_finished_partitions_are_forgotten_before_active_ones(hub: HubProcess) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as http:
        http.post("/api/events", json={"type": "progress", "partition_key": "still-rendering", "status": "generating"})
        for batch in range(6):  # more finished keys than the cap
            http.post("/api/events", json=[{"type": "progress", "partition_key": f"done-{batch}-{index}",
                                            "status": "completed"} for index in range(1000)])
        page = http.get("/api/partitions", params={"after": "still-renderinf", "limit": 1}).json()
    assert page["partitions"][0]["partition_key"] == "still-rendering"
