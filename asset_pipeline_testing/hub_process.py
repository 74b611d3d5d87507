"""A real hub on a loopback port for tests and benchmarks, and small client helpers."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from asset_pipeline.hub.server import WS_OPTIONS, Hub, HubConfig, build_hub_app
from asset_pipeline.hub.state import HubState
from asset_pipeline_testing.serving import free_port, serving

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
def running_hub(config: HubConfig | None = None, state: HubState | None = None,
                port: int | None = None) -> Iterator[RunningHub]:
    app = build_hub_app(config or HubConfig(), state)
    with serving(app, port=port, **WS_OPTIONS) as url:
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


@dataclass
class HubProcess:
    """`asset-pipeline hub` in its own process, as an operator starts it."""

    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def rss_mib(self) -> float:
        return _proc_status_mib(self.process.pid, "VmRSS:")

    def peak_rss_mib(self) -> float:
        return _proc_status_mib(self.process.pid, "VmHWM:")

    def status(self) -> dict[str, Any]:
        return _HTTP.get(self.url + "/api/status").json()


def _proc_status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


@contextmanager
def hub_process(port: int | None = None, **env: str) -> Iterator[HubProcess]:
    """Start the real CLI hub on `port` (an empty state: no Dagster instance) and stop it afterwards."""
    port = port or free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    environ.update({"DAGSTER_HOME": "/nonexistent", **env})  # a caller may pass its own DAGSTER_HOME
    process = subprocess.Popen([str(Path(sys.executable).parent / "asset-pipeline"), "hub", "--port", str(port)],
                               env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _HTTP.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        yield HubProcess(url, process)
    finally:
        process.terminate()
        process.wait(timeout=20)
        process.stderr.close()
