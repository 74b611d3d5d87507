"""A real hub on a loopback port for tests and benchmarks, and small client helpers."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from asset_pipeline.hub.server import WS_OPTIONS, Hub, HubConfig, build_hub_app
from asset_pipeline.hub.state import HubState
from asset_pipeline_tests.serving import serving


_HTTP = httpx.Client(timeout=10)


@dataclass(frozen=True)
class RunningHub:
    url: str
    hub: Hub

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def subscribe(self, path: str = "/ws/monitor", **options: Any) -> ClientConnection:
        return connect(self.ws_url + path, open_timeout=10, **options)

    def publish(self, events: list[dict[str, Any]] | dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return _HTTP.post(self.url + "/api/events", json=events, headers=headers)


@contextmanager
def running_hub(config: HubConfig | None = None, state: HubState | None = None) -> Iterator[RunningHub]:
    app = build_hub_app(config or HubConfig(), state)
    with serving(app, **WS_OPTIONS) as url:
        yield RunningHub(url, app.state.hub)


@contextmanager
def stalled_subscriber(url: str, path: str = "/ws/monitor") -> Iterator[socket.socket]:
    """A WebSocket client that completes the handshake and then never reads, with tiny buffers."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    try:
        yield sock
    finally:
        sock.close()


def receive(connection: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(connection.recv(timeout=timeout))


def receive_until(connection: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of type `kind`, skipping pings and others."""
    while True:
        message = receive(connection, timeout)
        if message["type"] == kind:
            return message


def progress(key: str, run_id: str = "run-1", **fields: Any) -> dict[str, Any]:
    return {"type": "progress", "run_id": run_id, "partition_key": key, "status": "generating", **fields}
