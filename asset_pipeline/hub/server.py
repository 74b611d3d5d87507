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

The protocol itself is `session.HubSession` (sans I/O); this module only moves bytes: it accepts
the socket, hands frames to the session and writes what it answers. With `redis_url` set, events
go through one Redis stream shared by every hub process (`redis_bus.py`).
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

from pydantic import ValidationError
from redis import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from asset_pipeline.errors import UnsafePathError
from asset_pipeline.hub.access import authorized, presented_token
from asset_pipeline.hub.broadcast_protocol import WRITE_FRAME_EXTENSION
from asset_pipeline.hub.connections import Subscribers, close_socket
from asset_pipeline.hub.redis_bus import RedisBus
from asset_pipeline.hub.request_body import limited_body
from asset_pipeline.hub.session import MAX_FRAME_BYTES, HubSession, channel_for
from asset_pipeline.hub.state import HubState, Outgoing, finite_only
from asset_pipeline.progress.messages import PARTITION_KEY_PATTERN, published_events
from asset_pipeline.storage.object_store import within_store
from asset_pipeline.storage.paths import inside_root

DASHBOARD = Path(__file__).parent / "dashboard"
# uvicorn's sans-I/O websockets protocol (about 5% less CPU per delivered message than the legacy
# one), extended to write a message framed once to every subscriber (broadcast_protocol.py).
WS_IMPLEMENTATION = "asset_pipeline.hub.broadcast_protocol:BroadcastProtocol"
# uvicorn's WebSocket options for the hub. Per-message deflate is off: messages are a few hundred
# bytes, and compressing each one once per subscriber cost more CPU than all the rest of a delivery
# (and a frame shared by every subscriber cannot be compressed per connection).
WS_OPTIONS = {"ws": WS_IMPLEMENTATION, "ws_max_size": MAX_FRAME_BYTES, "ws_per_message_deflate": False}
MAX_PUBLISH_BYTES = 4 * 1024 * 1024
CLOSE_POLICY_VIOLATION = 1008
MAX_PAGE = 1000
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)


@dataclass(frozen=True)
class HubConfig:
    token: str | None = None
    ping_interval_s: float = 20.0
    client_queue_size: int = 2000  # messages waiting for one subscriber ...
    client_queue_bytes: int = 8 * 1024 * 1024  # ... and their bytes; past either it is cut (1013)
    history_size: int = 10_000
    max_partitions: int = 20_000  # partitions and runs remembered; the least recently updated
    max_runs: int = 1_000  # finished ones are forgotten first
    snapshot_partitions: int = 1_000  # partitions in a monitor snapshot (the most recent)
    max_connections: int = 10_000  # WebSocket connections served at once; more are refused (1013)
    image_root: Any = None  # the image store, for the gallery: a folder, or an s3:// UPath (issue 16)
    spend_source: Callable[[], dict[str, Any] | None] | None = None  # read in a thread
    spend_interval_s: float = 5.0
    redis_url: str | None = None  # set: share events with every hub on this Redis (redis_bus.py)
    redis_prefix: str = "asset_pipeline:hub"


class Hub:
    """The running hub: state plus subscribers, all on one event loop; a Redis bus when shared."""

    def __init__(self, config: HubConfig, state: HubState | None = None):
        self.config = config
        self.state = state or HubState(history_size=config.history_size, max_partitions=config.max_partitions,
                                       max_runs=config.max_runs, snapshot_partitions=config.snapshot_partitions)
        self.subscribers = Subscribers(self.state.counters, config.client_queue_size, config.client_queue_bytes)
        self.bus = RedisBus(config.redis_url, prefix=config.redis_prefix, history_size=self.state.history_size) \
            if config.redis_url else None
        self.started_at = time.time()

    async def receive_published(self, events: list) -> dict[str, int]:
        """Events POSTed to this process: onto the shared stream, or straight to this hub's subscribers."""
        if self.bus is not None:
            return await self.bus.publish(events)
        return self.publish(events)

    def publish(self, events: list) -> dict[str, int]:
        """Number, remember and fan out `events` in this process (a hub not sharing a stream)."""
        accepted = duplicates = 0
        for event in events:
            outgoing = self.state.accept(event)
            if outgoing is None:
                duplicates += 1
                continue
            accepted += 1
            self.deliver(outgoing)
        return {"accepted": accepted, "duplicates": duplicates, "seq": self.state.seq}

    def deliver(self, outgoing: Outgoing) -> None:
        self.subscribers.fan_out(outgoing)

    def session(self, channel: str | None, what: str) -> HubSession:
        return HubSession(self.state, channel, what=what, ping_interval_s=self.config.ping_interval_s,
                          max_connections=self.config.max_connections, max_replay=self.config.client_queue_size)

    def status(self) -> dict[str, Any]:
        counters = self.state.counters
        return {
            "hub_id": self.state.hub_id,
            "shared": self.bus is not None,
            "connections": self.subscribers.count,
            "max_connections": self.config.max_connections,
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
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            self.subscribers.tick()

    async def refresh_spend(self) -> None:
        source = self.config.spend_source
        if source is None:
            return
        while True:
            with contextlib.suppress(Exception):  # a ledger that cannot be read leaves the last figure
                self.state.spend = finite_only(await asyncio.to_thread(source))
            await asyncio.sleep(self.config.spend_interval_s)

    async def serve(self, websocket: WebSocket, session: HubSession) -> None:
        """One subscriber: the session decides what to send, this moves the bytes."""
        await websocket.accept()
        subscribers = self.subscribers
        if self.bus is not None and "after_seq" in websocket.query_params:
            subscribers.pending += 1  # a resume may wait for this instance to read what another issued
            try:
                with contextlib.suppress(ValueError):
                    await self.bus.caught_up(self.state, int(websocket.query_params["after_seq"][:16]))
            finally:
                subscribers.pending -= 1
        reply = session.open(websocket.query_params, connections=subscribers.count + subscribers.pending)
        if reply.close is not None and not reply.too_many:
            for refusal in reply.texts:
                await websocket.send_text(refusal)
            await close_socket(websocket, reply.close)
            return
        write = websocket.scope.get("extensions", {}).get(WRITE_FRAME_EXTENSION, {}).get("write")
        subscriber = subscribers.add(websocket, session, write)
        subscribers.apply(subscriber, reply)
        try:
            while not subscriber.closing:
                try:
                    frame = await websocket.receive()
                except (RuntimeError, OSError):
                    return
                if frame["type"] == "websocket.disconnect":
                    return
                text: str | None = frame.get("text")
                if text is None and frame.get("bytes") is not None:
                    text = frame["bytes"].decode("utf-8", errors="replace")
                if text is not None:
                    subscribers.apply(subscriber, session.receive(text, connections=subscribers.count))
        finally:
            if not subscriber.closing:
                subscribers.remove(subscriber)


def build_hub_app(config: HubConfig, state: HubState | None = None) -> Starlette:
    hub = Hub(config, state)

    def allowed(connection: Request | WebSocket) -> bool:
        return authorized(config.token, presented_token(connection.headers, connection.query_params))

    def unauthorized() -> Response:
        return JSONResponse({"error": "missing or wrong token"}, status_code=401)

    async def publish(request: Request) -> Response:
        if not allowed(request):
            return unauthorized()
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
        try:
            return JSONResponse(await hub.receive_published(events))
        except (RedisError, OSError) as exc:
            return JSONResponse({"error": f"shared event stream unavailable ({exc.__class__.__name__})"}, status_code=503)

    async def partitions(request: Request) -> Response:
        """Every partition's latest state, by key, `limit` at a time: what a bounded snapshot left out."""
        if not allowed(request):
            return unauthorized()
        after = request.query_params.get("after", "")
        limit = request.query_params.get("limit", str(MAX_PAGE))
        if len(after) > 80 or not limit.isascii() or not limit.isdigit() or not 1 <= int(limit[:5]) <= MAX_PAGE:
            return JSONResponse({"error": f"after: a partition key; limit: 1 to {MAX_PAGE}"}, status_code=400)
        page = hub.state.partitions.page(after, int(limit))
        more = len(page) == int(limit) and page[-1]["partition_key"] != max(hub.state.partitions, default="")
        return JSONResponse({"partitions": page, "total": len(hub.state.partitions),
                             "next_after": page[-1]["partition_key"] if more else None})

    async def status(request: Request) -> Response:
        return JSONResponse(hub.status()) if allowed(request) else unauthorized()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def image(request: Request) -> Response:
        key = request.path_params["partition_key"]
        if not allowed(request):
            return unauthorized()
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

    def channel_route(kind: str, parameter: str = ""):
        async def endpoint(websocket: WebSocket) -> None:
            if not allowed(websocket):
                await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="missing or wrong token")
                return
            channel, what = channel_for(kind, websocket.path_params.get(parameter, ""))
            await hub.serve(websocket, hub.session(channel, what))
        return endpoint

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if hub.bus is not None:
            await hub.bus.start(hub.state)
        tasks = [asyncio.create_task(hub.keep_alive()), asyncio.create_task(hub.refresh_spend())]
        if hub.bus is not None:
            tasks.append(asyncio.create_task(hub.bus.run(hub.state, hub.deliver)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if hub.bus is not None:
                await hub.bus.close()

    app = Starlette(
        routes=[
            Route("/", dashboard),
            Route("/healthz", healthz),
            Route("/api/status", status),
            Route("/api/events", publish, methods=["POST"]),
            Route("/api/partitions", partitions),
            Route("/images/{partition_key}", image),
            WebSocketRoute("/ws/monitor", channel_route("monitor")),
            WebSocketRoute("/ws/runs/{run_id}", channel_route("runs", "run_id")),
            WebSocketRoute("/ws/partitions/{partition_key}", channel_route("partitions", "partition_key")),
            Mount("/static", StaticFiles(directory=DASHBOARD), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app



