"""The hub's Starlette app: WebSocket channels, the publisher endpoint, status, images, dashboard.

    WS   /ws/monitor                  everything, plus a system snapshot
    WS   /ws/runs/{run_id}            one run's progress and lifecycle events
    WS   /ws/partitions/{key}         one image's progress and lifecycle events
    POST /api/events                  publishers: one event or a list
    GET  /api/status                  connections, channels, counters
    GET  /healthz                     liveness
    GET  /images/{key}                the stored image of a partition (for the gallery)
    GET  /                            the dashboard page

A subscriber may connect with `?after_seq=N` (or send `{"type": "resume", "after_seq": N}`) to
receive what it missed instead of a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from asset_pipeline.errors import UnsafePathError
from asset_pipeline.hub.access import authorized, presented_token
from asset_pipeline.hub.connections import Subscriber, Subscribers
from asset_pipeline.hub.messages import (
    CLIENT_MESSAGE,
    PARTITION_KEY_PATTERN,
    PUBLISHED,
    PUBLISHED_BATCH,
    RUN_ID_PATTERN,
    ResumeRequest,
    envelope,
)
from asset_pipeline.hub.state import MONITOR, HubState, partition_channel, run_channel
from asset_pipeline.storage.paths import inside_root

DASHBOARD = Path(__file__).parent / "dashboard"
MAX_FRAME_BYTES = 64 * 1024
# uvicorn's sans-I/O websockets protocol: about 5% less CPU per delivered message than the legacy one.
WS_IMPLEMENTATION = "websockets-sansio"
# uvicorn's WebSocket options for the hub. Per-message deflate is off: messages are a few hundred
# bytes, and compressing each one once per subscriber cost more CPU than all the rest of a delivery.
WS_OPTIONS = {"ws": WS_IMPLEMENTATION, "ws_max_size": MAX_FRAME_BYTES, "ws_per_message_deflate": False}
MAX_PUBLISH_BYTES = 4 * 1024 * 1024
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
_RUN_ID = re.compile(RUN_ID_PATTERN)
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)


@dataclass(frozen=True)
class HubConfig:
    token: str | None = None
    ping_interval_s: float = 20.0
    client_queue_size: int = 2000
    history_size: int = 10_000
    image_root: Path | None = None  # the image store, for the gallery
    spend_source: Callable[[], dict[str, Any] | None] | None = None  # read in a thread
    spend_interval_s: float = 5.0


class Hub:
    """The running hub: state plus subscribers, all on one event loop."""

    def __init__(self, config: HubConfig, state: HubState | None = None):
        self.config = config
        self.state = state or HubState(history_size=config.history_size)
        self.subscribers = Subscribers(self.state.counters, config.client_queue_size)
        self.started_at = time.time()

    def publish(self, events: list) -> dict[str, int]:
        accepted = duplicates = 0
        for event in events:
            outgoing = self.state.accept(event)
            if outgoing is None:
                duplicates += 1
                continue
            accepted += 1
            self.subscribers.fan_out(outgoing)
        return {"accepted": accepted, "duplicates": duplicates, "seq": self.state.seq}

    def direct(self, subscriber: Subscriber, body: dict[str, Any]) -> None:
        subscriber.offer(json.dumps(envelope(self.state.next_seq(), body), separators=(",", ":")))

    def status(self) -> dict[str, Any]:
        counters = self.state.counters
        return {
            "connections": self.subscribers.count,
            "channels": self.subscribers.by_channel(),
            "events_received": counters.events_received,
            "events_delivered": counters.events_delivered,
            "duplicates_ignored": counters.duplicates_ignored,
            "dropped": counters.dropped_messages,
            "slow_clients_disconnected": counters.slow_clients_disconnected,
            "seq": self.state.seq,
            "partitions_known": len(self.state.partitions),
            "runs_known": len(self.state.runs),
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    async def keep_alive(self) -> None:
        """Ping every subscriber each interval; drop those silent for two intervals."""
        interval = self.config.ping_interval_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for subscriber in self.subscribers:
                if now - subscriber.last_seen > 2 * interval:
                    self.subscribers.disconnect(subscriber, CLOSE_POLICY_VIOLATION, "no pong")
                else:
                    self.direct(subscriber, {"type": "ping"})

    async def refresh_spend(self) -> None:
        source = self.config.spend_source
        if source is None:
            return
        while True:
            with contextlib.suppress(Exception):  # a ledger that cannot be read leaves the last figure
                self.state.spend = await asyncio.to_thread(source)
            await asyncio.sleep(self.config.spend_interval_s)


def build_hub_app(config: HubConfig, state: HubState | None = None) -> Starlette:
    hub = Hub(config, state)

    def allowed(connection: Request | WebSocket) -> bool:
        return authorized(config.token, presented_token(connection.headers, connection.query_params))

    async def publish(request: Request) -> Response:
        if not allowed(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_PUBLISH_BYTES:
            return JSONResponse({"error": f"body over {MAX_PUBLISH_BYTES} bytes"}, status_code=413)
        try:
            document = json.loads(body)
            events = PUBLISHED_BATCH.validate_python(document) if isinstance(document, list) \
                else [PUBLISHED.validate_python(document)]
        except json.JSONDecodeError as exc:
            return JSONResponse({"error": f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"},
                                status_code=400)
        except ValidationError as exc:
            problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
            return JSONResponse({"error": "invalid event", "problems": problems}, status_code=422)
        return JSONResponse(hub.publish(events))

    async def status(request: Request) -> Response:
        if not allowed(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        return JSONResponse(hub.status())

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def image(request: Request) -> Response:
        key = request.path_params["partition_key"]
        if not allowed(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        if not _PARTITION_KEY.match(key) or config.image_root is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        try:
            path = inside_root(config.image_root, Path("images") / f"{key}.png")
        except UnsafePathError:
            path = None
        if path is None or not path.is_file():
            return JSONResponse({"error": "no such image"}, status_code=404)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})

    async def dashboard(request: Request) -> Response:
        return FileResponse(DASHBOARD / "index.html", media_type="text/html")

    async def monitor(websocket: WebSocket) -> None:
        await subscribe(websocket, MONITOR)

    async def run(websocket: WebSocket) -> None:
        run_id = websocket.path_params["run_id"]
        await subscribe(websocket, run_channel(run_id) if _RUN_ID.match(run_id) else None, f"run id '{run_id[:80]}'")

    async def partition(websocket: WebSocket) -> None:
        key = websocket.path_params["partition_key"]
        valid = _PARTITION_KEY.match(key)
        await subscribe(websocket, partition_channel(key) if valid else None, f"partition key '{key[:80]}'")

    async def subscribe(websocket: WebSocket, channel: str | None, what: str = "") -> None:
        if not allowed(websocket):
            await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="missing or wrong token")
            return
        await websocket.accept()
        if channel is None:
            await websocket.send_json(envelope(hub.state.next_seq(), {
                "type": "error", "code": "invalid_channel", "message": f"invalid {what}"}))
            await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="invalid channel")
            return
        subscriber = hub.subscribers.add(websocket, channel)
        hub.direct(subscriber, {"type": "connection", "channel": channel, "ping_interval_s": config.ping_interval_s})
        after_seq = websocket.query_params.get("after_seq")
        if after_seq is not None and after_seq.isdigit():
            _resume(subscriber, int(after_seq))
        else:
            subscriber.offer(json.dumps(hub.state.snapshot(channel, connections=hub.subscribers.count)))
        subscriber.sender = asyncio.create_task(_send(subscriber))
        try:
            await _receive(subscriber)
        finally:
            if not subscriber.closing:
                hub.subscribers.remove(subscriber)
            subscriber.sender.cancel()

    def _resume(subscriber: Subscriber, after_seq: int) -> None:
        missed = hub.state.replay(subscriber.channel, after_seq)
        if missed is None:
            snapshot = hub.state.snapshot(subscriber.channel, connections=hub.subscribers.count, gap=True)
            subscriber.offer(json.dumps(snapshot))
            return
        for text in missed:
            if not subscriber.offer(text):
                hub.subscribers.disconnect(subscriber, 1013, "too much to resume; reconnect with a snapshot")
                return

    async def _send(subscriber: Subscriber) -> None:
        counters = hub.state.counters
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, asyncio.CancelledError):
            while True:
                text = await subscriber.queue.get()
                await subscriber.websocket.send_text(text)
                counters.events_delivered += 1

    async def _receive(subscriber: Subscriber) -> None:
        websocket = subscriber.websocket
        while True:
            try:
                frame = await websocket.receive()
            except (RuntimeError, OSError):
                return
            if frame["type"] == "websocket.disconnect":
                return
            subscriber.last_seen = time.monotonic()
            text = frame.get("text")
            if text is None and frame.get("bytes") is not None:
                text = frame["bytes"].decode("utf-8", errors="replace")
            if text is None:
                continue
            if len(text.encode()) > MAX_FRAME_BYTES:
                hub.subscribers.disconnect(subscriber, CLOSE_TOO_BIG, f"frame over {MAX_FRAME_BYTES} bytes")
                return
            handle_client_message(subscriber, text)

    def handle_client_message(subscriber: Subscriber, text: str) -> None:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            hub.direct(subscriber, {"type": "error", "code": "malformed_json", "message": f"malformed JSON: {exc.msg}"})
            return
        try:
            message = CLIENT_MESSAGE.validate_python(document)
        except ValidationError:
            kind = document.get("type") if isinstance(document, dict) else None
            hub.direct(subscriber, {"type": "error", "code": "unknown_type" if kind not in ("resume",) else "invalid",
                                    "message": f"expected resume (with after_seq), ping or pong; got {str(kind)[:40]!r}"})
            return
        if isinstance(message, ResumeRequest):
            _resume(subscriber, message.after_seq)
        elif message.type == "ping":
            hub.direct(subscriber, {"type": "pong"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        tasks = [asyncio.create_task(hub.keep_alive()), asyncio.create_task(hub.refresh_spend())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    app = Starlette(
        routes=[
            Route("/", dashboard),
            Route("/healthz", healthz),
            Route("/api/status", status),
            Route("/api/events", publish, methods=["POST"]),
            Route("/images/{partition_key}", image),
            WebSocketRoute("/ws/monitor", monitor),
            WebSocketRoute("/ws/runs/{run_id}", run),
            WebSocketRoute("/ws/partitions/{partition_key}", partition),
            Mount("/static", StaticFiles(directory=DASHBOARD), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
