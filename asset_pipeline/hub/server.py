"""The hub's Starlette app: WebSocket channels, the publisher endpoint, status, images, dashboard.

    WS   /ws/monitor                  everything, plus a system snapshot
    WS   /ws/runs/{run_id}            one run's progress and lifecycle events
    WS   /ws/partitions/{key}         one image's progress and lifecycle events
    POST /api/events                  publishers: one event or a list
    GET  /api/status                  connections, channels, counters
    GET  /api/partitions?after=K&limit=N  every partition's latest state, paged by key
    GET  /healthz                     liveness
    GET  /images/{key}                the stored image of a partition (for the gallery)
    GET  /                            the dashboard page

A subscriber may connect with `?after_seq=N&hub_id=H` (or send `{"type": "resume", "after_seq": N,
"hub_id": H}`) to receive what it missed instead of a snapshot; a seq this hub process cannot
vouch for (another `hub_id`, older than its history, not yet issued) gets a gap snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
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
    RUN_ID_PATTERN,
    ResumeRequest,
    encode,
    envelope,
    published_events,
)
from asset_pipeline.hub.state import (
    MONITOR,
    HubState,
    finite_only,
    partition_channel,
    run_channel,
)
from asset_pipeline.storage.object_store import within_store
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
MAX_PAGE = 1000
_RESUME_QUERY = TypeAdapter(ResumeRequest)
_RUN_ID = re.compile(RUN_ID_PATTERN)
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)


@dataclass(frozen=True)
class HubConfig:
    token: str | None = None
    ping_interval_s: float = 20.0
    client_queue_size: int = 2000  # messages waiting for one subscriber ...
    client_queue_bytes: int = 8 * 1024 * 1024  # ... and their characters; past either it is cut (1013)
    history_size: int = 10_000
    max_partitions: int = 20_000  # partitions and runs remembered; the least recently updated
    max_runs: int = 1_000  # finished ones are forgotten first
    snapshot_partitions: int = 1_000  # partitions in a monitor snapshot (the most recent)
    image_root: Any = None  # the image store, for the gallery: a folder, or an s3:// UPath (issue 16)
    spend_source: Callable[[], dict[str, Any] | None] | None = None  # read in a thread
    spend_interval_s: float = 5.0


class Hub:
    """The running hub: state plus subscribers, all on one event loop."""

    def __init__(self, config: HubConfig, state: HubState | None = None):
        self.config = config
        self.state = state or HubState(history_size=config.history_size, max_partitions=config.max_partitions,
                                       max_runs=config.max_runs, snapshot_partitions=config.snapshot_partitions)
        self.subscribers = Subscribers(self.state.counters, config.client_queue_size, config.client_queue_bytes)
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
        subscriber.offer(encode(envelope(self.state.next_seq(), body)))

    def status(self) -> dict[str, Any]:
        counters = self.state.counters
        return {
            "hub_id": self.state.hub_id,
            "connections": self.subscribers.count,
            "channels": self.subscribers.by_channel(),
            "events_received": counters.events_received,
            "events_delivered": counters.events_delivered,
            "duplicates_ignored": counters.duplicates_ignored,
            "dropped": counters.dropped_messages,
            "slow_clients_disconnected": counters.slow_clients_disconnected,
            "gap_snapshots": counters.gap_snapshots,
            "seq": self.state.seq,
            "partitions_known": len(self.state.partitions),
            "runs_known": len(self.state.runs),
            "partitions_forgotten": self.state.partitions.evicted,
            "runs_forgotten": self.state.runs.evicted,
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
                self.state.spend = finite_only(await asyncio.to_thread(source))
            await asyncio.sleep(self.config.spend_interval_s)


def build_hub_app(config: HubConfig, state: HubState | None = None) -> Starlette:
    hub = Hub(config, state)

    def allowed(connection: Request | WebSocket) -> bool:
        return authorized(config.token, presented_token(connection.headers, connection.query_params))

    async def publish(request: Request) -> Response:
        if not allowed(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        body = await limited_body(request, MAX_PUBLISH_BYTES)
        if body is None:
            return JSONResponse({"error": f"body over {MAX_PUBLISH_BYTES} bytes"}, status_code=413)
        try:
            events = published_events(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            if errors[0]["type"] == "json_invalid":  # syntax, nesting too deep, a number out of range
                return JSONResponse({"error": "malformed JSON: " + errors[0]["msg"].removeprefix("Invalid JSON: ")},
                                    status_code=400)
            problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors[:20]]
            return JSONResponse({"error": "invalid event", "problems": problems}, status_code=422)
        return JSONResponse(hub.publish(events))

    async def partitions(request: Request) -> Response:
        """Every partition's latest state, by key, `limit` at a time: what a bounded snapshot left out."""
        if not allowed(request):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        after = request.query_params.get("after", "")
        limit = request.query_params.get("limit", str(MAX_PAGE))
        if len(after) > 80 or not limit.isascii() or not limit.isdigit() or not 1 <= int(limit[:5]) <= MAX_PAGE:
            return JSONResponse({"error": f"after: a partition key; limit: 1 to {MAX_PAGE}"}, status_code=400)
        page = hub.state.partitions.page(after, int(limit))
        more = len(page) == int(limit) and page[-1]["partition_key"] != max(hub.state.partitions, default="")
        return JSONResponse({"partitions": page, "total": len(hub.state.partitions),
                             "next_after": page[-1]["partition_key"] if more else None})

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
        if not isinstance(config.image_root, Path):  # issue 16: the store is on object storage
            return await object_image(config.image_root, key)
        try:
            path = inside_root(config.image_root, Path("images") / f"{key}.png")
        except UnsafePathError:
            path = None
        if path is None or not path.is_file():
            return JSONResponse({"error": "no such image"}, status_code=404)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})

    async def object_image(root: Any, key: str) -> Response:
        """Issue 16: the partition's image read from the object store (in a worker thread) and sent
        as it is, so browsers need no access to the bucket."""
        try:
            data = await run_in_threadpool(lambda: within_store(root, f"images/{key}.png").read_bytes())
        except (UnsafePathError, FileNotFoundError):
            return JSONResponse({"error": "no such image"}, status_code=404)
        except Exception:  # noqa: BLE001 - the store is unreachable: say so without its error text
            return JSONResponse({"error": "image store unavailable"}, status_code=502)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

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
            await refuse(websocket, "invalid_channel", f"invalid {what}")
            return
        resume = None
        if "after_seq" in websocket.query_params:
            try:
                resume = _RESUME_QUERY.validate_python({"type": "resume", **{
                    name: websocket.query_params[name][:40] for name in ("after_seq", "hub_id")
                    if name in websocket.query_params}})
            except ValidationError as exc:
                await refuse(websocket, "invalid", f"{_problem(exc)} (after_seq: 0 to 2**53-1, hub_id: hex)")
                return
        subscriber = hub.subscribers.add(websocket, channel)
        hub.direct(subscriber, {"type": "connection", "channel": channel, "hub_id": hub.state.hub_id,
                                "ping_interval_s": config.ping_interval_s})
        if resume is not None:
            _resume(subscriber, resume)
        else:
            subscriber.offer(encode(hub.state.snapshot(channel, connections=hub.subscribers.count)))
        subscriber.sender = asyncio.create_task(_send(subscriber))
        try:
            await _receive(subscriber)
        finally:
            if not subscriber.closing:
                hub.subscribers.remove(subscriber)
            subscriber.sender.cancel()

    async def refuse(websocket: WebSocket, code: str, message: str) -> None:
        """An `error` message, then a policy-violation close frame."""
        await websocket.send_text(encode(envelope(hub.state.next_seq(), {
            "type": "error", "code": code, "message": message})))
        await websocket.close(code=CLOSE_POLICY_VIOLATION, reason=code)

    def _resume(subscriber: Subscriber, request: ResumeRequest) -> None:
        missed = hub.state.replay(subscriber.channel, request.after_seq, request.hub_id)
        if missed is None:
            snapshot = hub.state.snapshot(subscriber.channel, connections=hub.subscribers.count, gap=True)
            subscriber.offer(encode(snapshot))
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
                subscriber.queued_chars -= len(text)
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
        """Parsed by pydantic's JSON parser: depth, number size and every field are checked, never raised."""
        try:
            message = CLIENT_MESSAGE.validate_json(text)
        except ValidationError as exc:
            kind = exc.errors(include_url=False)[0]["type"]
            code = {"json_invalid": "malformed_json", "union_tag_invalid": "unknown_type",
                    "union_tag_not_found": "unknown_type", "model_attributes_type": "unknown_type"}.get(kind, "invalid")
            hub.direct(subscriber, {"type": "error", "code": code,
                                    "message": f"{_problem(exc)}; expected resume (after_seq, hub_id), ping or pong"})
            return
        if isinstance(message, ResumeRequest):
            _resume(subscriber, message)
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
            Route("/api/partitions", partitions),
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


async def limited_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to pass `limit` bytes: a declared
    Content-Length is checked before reading, a chunked body while it streams, so an oversized
    upload never sits in memory (Starlette's `request.body()` has no limit)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _problem(exc: ValidationError) -> str:
    """The first problem of a validation error, in one short line (the input is never echoed)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return (f"{where}: " if where else "") + error["msg"][:200]
