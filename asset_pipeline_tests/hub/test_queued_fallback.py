"""Served by a plain ASGI WebSocket implementation (no `BroadcastProtocol` write extension), the hub
falls back to one bounded queue and sender task per subscriber: same messages, same order, same
resume, and a client that stops reading is still cut off with 1013 without slowing the others."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from asset_pipeline.hub.server import HubConfig, build_hub_app
from asset_pipeline_testing.hub_process import RunningHub, progress, receive, receive_until, stalled_subscriber
from asset_pipeline_testing.serving import serving


@contextmanager
def plain_hub(config: HubConfig) -> Iterator[RunningHub]:
    app = build_hub_app(config)
    with serving(app, ws="websockets-sansio", ws_per_message_deflate=False) as url:
        yield RunningHub(url, app.state.hub)


def test_subscribe_publish_and_resume_through_the_queued_path() -> None:
    with plain_hub(HubConfig()) as hub:
        with hub.subscribe() as client:
            assert [receive(client)["type"], receive(client)["type"]] == ["connection", "snapshot"]
            hub.publish([progress("a", percentage=p) for p in range(5)])
            seen = [receive_until(client, "progress") for _ in range(5)]
            assert [m["percentage"] for m in seen] == list(range(5))
        hub.publish([progress("a", percentage=p) for p in range(5, 9)])
        with hub.subscribe(f"/ws/monitor?after_seq={seen[-1]['seq']}") as back:
            receive(back)
            assert [receive(back)["percentage"] for _ in range(4)] == [5, 6, 7, 8]
        assert hub.hub.status()["events_delivered"] >= 11


def test_a_stalled_client_is_cut_through_the_queued_path() -> None:
    with plain_hub(HubConfig(client_queue_size=20)) as hub, stalled_subscriber(hub.url):
        with hub.subscribe() as fast:
            receive(fast), receive(fast)
            for _batch in range(150):  # ~2.8 MB: past the kernel buffers, then the 20-message queue
                hub.publish([progress("a", message="x" * 1900) for _ in range(10)])
                for _ in range(10):
                    receive_until(fast, "progress")
            deadline = time.monotonic() + 10
            while hub.hub.status()["slow_clients_disconnected"] < 1:
                assert time.monotonic() < deadline, hub.hub.status()
                time.sleep(0.05)
            assert hub.hub.status()["connections"] == 1
