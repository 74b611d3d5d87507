"""A local fake of Replicate's HTTP API (Starlette), for tests and benchmarks; never used in production.

It speaks the endpoints the official client uses: `POST /v1/models/{owner}/{name}/predictions`,
`POST /v1/predictions`, `GET /v1/predictions` (newest first, paged), `GET /v1/predictions/{id}`,
`POST /v1/predictions/{id}/cancel`, plus
unauthenticated output delivery under `/files/`. Errors are RFC 7807 JSON (401, 404, 422, 429 with
`Retry-After`, 500). Predictions take `latency_s` to finish. It keeps the bill: what real Replicate
would have charged, per model, so tests can compare it with the ledger.

Failure injection: `down_until` answers every request `down_status` (503) until then (an outage); prompts containing `[[fail]]` fail, `[[corrupt]]` deliver bytes that are not an
image, `[[wrongsize]]` deliver the wrong size; `fail_creates` holds HTTP statuses to answer the
next creations with; `max_running` answers 429 beyond that many unfinished predictions.
Provider limits (issue 16): `create_rate_limit` answers 429 + `Retry-After` to a creation above N
creates/s (a token bucket of rate N and burst N, as a provider's "N per second" quota works);
`answered_429` counts every 429 a creation got; `latency_s` may change while the server runs (a
provider slowing down): each prediction keeps the latency it was created with.

Hostile deliveries (issue 11), also by prompt marker: `[[pixelbomb]]` a 13000x13000 PNG (0.5 MB),
`[[tiny]]` a 1x1 PNG, `[[drip]]` 16 bytes every `drip_interval_s` while `drip_enabled`,
`[[foreignhost]]` a URL on `localhost` (not the base URL's host), `[[redirectloop]]` a redirect to
itself for ever, `[[redirectaway]]` a redirect to `localhost`, `[[garbagedata]]` a `data:` URI
that is not base64, `[[fileurl]]` a `file://` URL, `[[expired]]` a URL that answers 404,
`[[hugefile]]` 8 MB streamed without a length, `[[hugedata]]` an 8 MB inline `data:` URI in the
prediction's own JSON. `delivery_requests` counts requests per route.
Hostile money modes (issue 11), each a field of `FakeReplicateState`: `reported_predict_time`
(what `metrics.predict_time` says, e.g. -1000, 1e7, NaN, "fast"; the bill keeps the true time),
`create_resets` (the next creations are made, then the connection drops mid-answer),
`create_garbled` (the next creations are made, then answered with a garbled (status, body)),
`succeeded_output` (what a succeeded prediction reports as output: [], None, "file:///etc/passwd",
a bad data: URI, an expired file or a redirect loop; `{base}` is the server's URL), `garbled_reads`
(the next reads of a prediction are answered 200 with HTML).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
import random
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

PER_IMAGE = {"black-forest-labs/flux-schnell": 0.003, "black-forest-labs/flux-dev": 0.025}
PER_SECOND = {"stability-ai/sdxl": 0.000975}
VERSIONS = {"abc123": "stability-ai/sdxl"}

LIST_PAGE_SIZE = 100
REAL = "__real__"  # hostile money modes: report the truth


@dataclass
class FakePrediction:
    id: str
    model: str
    input: dict[str, Any]
    created: float
    status: str = "starting"
    latency_s: float | None = None  # fixed at creation; None: the state's current latency
    output: Any = None
    error: str | None = None
    predict_time: float | None = None
    billed: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))


@dataclass
class FakeReplicateState:
    token: str
    latency_s: float = 0.05
    max_running: int | None = None
    output_mode: str = "url"  # "url" or "data"
    fail_creates: list[int] = field(default_factory=list)
    fail_gets: list[int] = field(default_factory=list)
    failure_rate: float = 0.0  # share of predictions that fail transiently
    create_failure_rate: float = 0.0  # share of creations answered 500 / 429
    down_until: float = 0.0  # time.monotonic() before which every request is answered 503 (an outage)
    down_status: int = 503  # what an outage answers (500 is not retried by the client's own GET retries)
    random: random.Random = field(default_factory=lambda: random.Random(7))
    unavailable_models: set[str] = field(default_factory=set)
    predictions: dict[str, FakePrediction] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    creations: Counter = field(default_factory=Counter)  # input fingerprint -> count
    bill_micros: int = 0
    create_times: list[float] = field(default_factory=list)  # monotonic time of every creation request
    list_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""
    # Hostile deliveries (issue 11): see the module docstring for the prompt markers.
    drip_interval_s: float = 2.0
    drip_enabled: bool = True
    drip_started: threading.Event = field(default_factory=threading.Event)
    delivery_requests: Counter = field(default_factory=Counter)  # route -> requests served
    # --- hostile money modes (issue 11); see the module docstring -------------------------------
    reported_predict_time: Any = REAL
    create_resets: int = 0
    create_garbled: list[tuple[int, str]] = field(default_factory=list)
    succeeded_output: Any = REAL
    garbled_reads: int = 0
    # --- provider limits (issue 16); see the module docstring ---------------------------------------
    create_rate_limit: float | None = None
    answered_429: int = 0
    _create_tokens: float | None = None
    _create_tokens_at: float = 0.0

    def take_create_token(self, now: float) -> float:
        """0 if a creation may go ahead under `create_rate_limit` (one token taken), else the seconds
        until a token is back. Called with `lock` held."""
        rate = self.create_rate_limit
        if not rate:
            return 0.0
        tokens = rate if self._create_tokens is None else self._create_tokens
        tokens = min(rate, tokens + (now - self._create_tokens_at) * rate)
        self._create_tokens_at = now
        if tokens >= 1:
            self._create_tokens = tokens - 1
            return 0.0
        self._create_tokens = tokens
        return (1 - tokens) / rate

    @property
    def bill_usd(self) -> float:
        """What the account owes now. Like Replicate, a prediction finishes (and is billed) when its
        time is up whether or not anyone polls it; a run killed mid-poll still pays."""
        with self.lock:
            for prediction in list(self.predictions.values()):
                _advance(self, prediction)
        return self.bill_micros / 1_000_000

    @property
    def created_total(self) -> int:
        return sum(self.creations.values())


def problem(status: int, title: str, detail: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": f"https://replicate.com/docs/errors#{status}", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def build_app(state: FakeReplicateState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.token}"

    def outage() -> Response | None:
        if time.monotonic() < state.down_until:
            return problem(state.down_status, "Service Unavailable", "the provider is down")
        return None

    async def create(request: Request, model: str) -> Response:
        if (down := outage()) is not None:
            return down
        if not authorized(request):
            return problem(401, "Unauthenticated", "Invalid token.")
        body = json.loads(await request.body() or b"{}")
        inputs = body.get("input") or {}
        with state.lock:
            state.create_times.append(time.monotonic())
            if (wait := state.take_create_token(time.monotonic())) > 0:
                state.answered_429 += 1
                return problem(429, "Too many requests", f"create rate above {state.create_rate_limit:g}/s",
                               {"Retry-After": str(max(1, math.ceil(wait)))})
            if state.fail_creates:
                status = state.fail_creates.pop(0)
                headers = {"Retry-After": "1"} if status == 429 else None
                return problem(status, "Injected failure", f"injected HTTP {status}", headers)
            if state.create_failure_rate and state.random.random() < state.create_failure_rate:
                status = state.random.choice([429, 500, 503])
                state.answered_429 += status == 429
                return problem(status, "Injected failure", "Request was throttled. Expected available in 1 second."
                               if status == 429 else "injected server error", {"Retry-After": "1"} if status == 429 else None)
            if model in state.unavailable_models or (model not in PER_IMAGE and model not in PER_SECOND):
                return problem(404, "Model not found", f"no model {model}")
            if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
                return problem(422, "Invalid input", "prompt is required")
            now = time.monotonic()  # predictions finish on time even when nobody polls them
            running = sum(1 for p in state.predictions.values()
                          if p.status in ("starting", "processing") and now - p.created < (p.latency_s or state.latency_s))
            if state.max_running is not None and running >= state.max_running:
                state.answered_429 += 1
                return problem(429, "Too many requests", "throttled", {"Retry-After": "1"})
            prediction = FakePrediction(uuid.uuid4().hex[:20], model, inputs, time.monotonic(), latency_s=state.latency_s)
            state.predictions[prediction.id] = prediction
            state.creations[fingerprint(model, inputs)] += 1
            if state.create_resets > 0:  # hostile money mode: made, but the answer never arrives
                state.create_resets -= 1
                return _DroppedAnswer()
            if state.create_garbled:  # hostile money mode: made, but the answer is unreadable
                status, text = state.create_garbled.pop(0)
                return Response(text, status_code=status, media_type="text/html")
        return _LenientJSON(_as_json(state, prediction), status_code=201)

    async def create_for_model(request: Request) -> Response:
        return await create(request, f"{request.path_params['owner']}/{request.path_params['name']}")

    async def create_for_version(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        model = VERSIONS.get(str(body.get("version")), f"unknown-version/{body.get('version')}")
        request._body = json.dumps(body).encode()  # starlette caches the body; keep it readable
        return await create(request, model)

    def existing(request: Request, then) -> Response:  # type: ignore[no-untyped-def]
        """Authenticate, find the prediction, bring it up to date, then apply `then` to it."""
        if (down := outage()) is not None:
            return down
        if not authorized(request):
            return problem(401, "Unauthenticated", "Invalid token.")
        with state.lock:
            if state.fail_gets:
                return problem(state.fail_gets.pop(0), "Injected failure", "injected failure on a read")
            if state.garbled_reads > 0:  # hostile money mode: a 200 whose body is not JSON
                state.garbled_reads -= 1
                return Response("<html><body>Service temporarily unavailable</body></html>", media_type="text/html")
            prediction = state.predictions.get(request.path_params["id"])
            if prediction is None:
                return problem(404, "Not found", "no such prediction")
            _advance(state, prediction)
            then(prediction)
            return _LenientJSON(_as_json(state, prediction))

    def _cancel(prediction: FakePrediction) -> None:
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
            prediction.predict_time = time.monotonic() - prediction.created
            _bill(state, prediction)

    async def get(request: Request) -> Response:
        return existing(request, lambda prediction: None)

    async def list_predictions(request: Request) -> Response:
        """GET /v1/predictions: the account's predictions, newest first, LIST_PAGE_SIZE a page."""
        if (down := outage()) is not None:
            return down
        if not authorized(request):
            return problem(401, "Unauthenticated", "Invalid token.")
        offset = int(request.query_params.get("cursor", "0"))
        with state.lock:
            newest_first = list(reversed(state.predictions.values()))
            page = newest_first[offset:offset + LIST_PAGE_SIZE]
            for prediction in page:
                _advance(state, prediction)
            results = [_as_json(state, prediction) for prediction in page]
        more = offset + LIST_PAGE_SIZE < len(newest_first)
        state.list_requests += 1
        return _LenientJSON({"previous": None, "results": results,
                             "next": f"{state.base_url}/v1/predictions?cursor={offset + LIST_PAGE_SIZE}" if more else None})

    async def redirect_loop(request: Request) -> Response:  # hostile money mode: an output never delivered
        return RedirectResponse(str(request.url), status_code=302)

    async def delivery_down(request: Request) -> Response:  # hostile money mode: a delivery host that errs
        return Response("delivery unavailable", status_code=503)

    async def cancel(request: Request) -> Response:
        return existing(request, _cancel)

    async def file(request: Request) -> Response:
        state.delivery_requests["files"] += 1
        data = state.files.get(request.path_params["name"])
        if data is None:
            return problem(404, "Not found", "file expired")
        return Response(data, media_type="application/octet-stream")

    async def drip(request: Request) -> Response:
        """The file, 16 bytes every `drip_interval_s` (at once when `drip_enabled` is off)."""
        state.delivery_requests["drip"] += 1
        data = state.files.get(request.path_params["name"])
        if data is None:
            return problem(404, "Not found", "file expired")
        if not state.drip_enabled:
            return Response(data, media_type="image/png")

        async def chunks():  # type: ignore[no-untyped-def]
            state.drip_started.set()
            for start in range(0, len(data), 16):
                yield data[start:start + 16]
                await asyncio.sleep(state.drip_interval_s)

        return StreamingResponse(chunks(), media_type="image/png")

    async def redirect(request: Request) -> Response:
        """`/redirect/loop/{n}` redirects to `n + 1` for ever; `/redirect/away/{name}` to localhost."""
        state.delivery_requests["redirect"] += 1
        kind, value = request.path_params["kind"], request.path_params["value"]
        if kind == "loop":
            return RedirectResponse(f"{state.base_url}/redirect/loop/{int(value) + 1}", status_code=302)
        return RedirectResponse(_on_localhost(state, f"/files/{value}"), status_code=302)

    async def huge(request: Request) -> Response:
        state.delivery_requests["huge"] += 1

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(128):
                yield b"\0" * 65536

        return StreamingResponse(chunks(), media_type="image/png")

    return Starlette(routes=[
        Route("/drip/{name}", drip, methods=["GET"]),
        Route("/redirect/{kind}/{value}", redirect, methods=["GET"]),
        Route("/huge/{name}", huge, methods=["GET"]),
        Route("/v1/models/{owner}/{name}/predictions", create_for_model, methods=["POST"]),
        Route("/v1/predictions", create_for_version, methods=["POST"]),
        Route("/v1/predictions", list_predictions, methods=["GET"]),
        Route("/v1/predictions/{id}", get, methods=["GET"]),
        Route("/v1/predictions/{id}/cancel", cancel, methods=["POST"]),
        Route("/files/{name}", file, methods=["GET"]),
        Route("/money/redirect-loop", redirect_loop, methods=["GET"]),
        Route("/money/delivery-down", delivery_down, methods=["GET"]),
    ])


def fingerprint(model: str, inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([model, inputs], sort_keys=True).encode()).hexdigest()


def _advance(state: FakeReplicateState, prediction: FakePrediction) -> None:
    """Finish a prediction once its latency has passed."""
    if prediction.status not in ("starting", "processing"):
        return
    elapsed = time.monotonic() - prediction.created
    latency = prediction.latency_s if prediction.latency_s is not None else state.latency_s
    if elapsed < latency:
        prediction.status = "processing" if elapsed > latency / 2 else "starting"
        return
    prediction.predict_time = latency
    prompt = prediction.input.get("prompt", "")
    if "[[fail]]" in prompt:
        prediction.status, prediction.error = "failed", "injected model failure"
    elif "[[nsfw]]" in prompt:
        prediction.status, prediction.error = "failed", "NSFW content detected. Try running it again, or try a different prompt."
    elif state.failure_rate and state.random.random() < state.failure_rate:
        prediction.status, prediction.error = "failed", "injected transient failure (CUDA driver hiccup)"
    else:
        prediction.status = "succeeded"
        data = _render(prediction)
        if state.output_mode == "data":
            prediction.output = ["data:image/png;base64," + base64.b64encode(data).decode()]
        else:
            name = f"{prediction.id}.{prediction.input.get('output_format', 'webp')}"
            state.files[name] = data
            prediction.output = [f"{state.base_url}/files/{name}"]
        _hostile_delivery(state, prediction)
        if state.succeeded_output != REAL:  # hostile money mode: billed, but the output is unusable
            prediction.output = _hostile_output(state, state.succeeded_output)
    _bill(state, prediction)


def _bill(state: FakeReplicateState, prediction: FakePrediction) -> None:
    if prediction.billed:
        return
    prediction.billed = True
    if prediction.model in PER_IMAGE and prediction.status == "succeeded":
        state.bill_micros += round(PER_IMAGE[prediction.model] * 1_000_000)
    elif prediction.model in PER_SECOND:
        state.bill_micros += round(PER_SECOND[prediction.model] * (prediction.predict_time or 0) * 1_000_000)


def _size(inputs: dict[str, Any]) -> tuple[int, int]:
    if "width" in inputs:
        return int(inputs["width"]), int(inputs["height"])
    w, h = (int(x) for x in str(inputs.get("aspect_ratio", "1:1")).split(":"))
    width = round(math.sqrt(1024 * 1024 * w / h) / 16) * 16
    return width, round(width * h / w / 16) * 16


def _render(prediction: FakePrediction) -> bytes:
    prompt = prediction.input.get("prompt", "")
    if "[[corrupt]]" in prompt:
        return b"\x89PNG\r\n\x1a\n this is not really an image"
    width, height = _size(prediction.input)
    if "[[wrongsize]]" in prompt:
        width, height = width // 2, height // 2
    seed = int(prediction.input.get("seed", 0))
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 120))
    for x in range(0, width, 32):  # stripes, so the image is not blank
        image.paste((255 - (x % 256), 80, (x * 7) % 256), (x, 0, min(width, x + 12), height))
    out = io.BytesIO()
    image_format = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[prediction.input.get("output_format", "webp")]
    image.save(out, format=image_format)
    return out.getvalue()


def _logs(state: FakeReplicateState, prediction: FakePrediction, steps: int = 4) -> str:
    """tqdm lines like a diffusion model's, one per step finished so far while processing."""
    if prediction.status == "starting":
        return ""
    fraction = 1.0 if prediction.status in ("succeeded", "failed", "canceled") else \
        min(1.0, (time.monotonic() - prediction.created) / max(state.latency_s, 1e-6))
    done = int(fraction * steps)
    return "Using seed: 1\n" + "".join(
        f"{100 * step // steps:3d}%|{'#' * step}{' ' * (steps - step)}| {step}/{steps} [00:0{step}<00:00]\n"
        for step in range(done + 1)
    )


def _as_json(state: FakeReplicateState, prediction: FakePrediction) -> dict[str, Any]:
    return {
        "id": prediction.id,
        "model": prediction.model,
        "version": "fake",
        "status": prediction.status,
        "input": prediction.input,
        "output": prediction.output,
        "logs": _logs(state, prediction),
        "error": prediction.error,
        "metrics": _metrics(state, prediction),
        "created_at": prediction.created_at,
        **_timestamps(prediction),
        "urls": {
            "get": f"{state.base_url}/v1/predictions/{prediction.id}",
            "cancel": f"{state.base_url}/v1/predictions/{prediction.id}/cancel",
        },
    }


HOSTILE_MARKERS = ("[[pixelbomb]]", "[[tiny]]", "[[drip]]", "[[foreignhost]]", "[[redirectloop]]", "[[redirectaway]]",
                   "[[garbagedata]]", "[[fileurl]]", "[[expired]]", "[[hugefile]]", "[[hugedata]]")
_BOMB: list[bytes] = []


def _hostile_delivery(state: FakeReplicateState, prediction: FakePrediction) -> None:
    """Replace a succeeded prediction's output as its prompt's hostile-delivery marker says."""
    prompt = prediction.input.get("prompt", "")
    marker = next((m for m in HOSTILE_MARKERS if m in prompt), None)
    if marker is None:
        return
    name = f"{prediction.id}.png"
    state.files[name] = pixel_bomb() if marker == "[[pixelbomb]]" else _png((1, 1)) if marker == "[[tiny]]" \
        else state.files.get(f"{prediction.id}.{prediction.input.get('output_format', 'webp')}", b"")
    url = {
        "[[drip]]": f"{state.base_url}/drip/{name}",
        "[[foreignhost]]": _on_localhost(state, f"/files/{name}"),
        "[[redirectloop]]": f"{state.base_url}/redirect/loop/0",
        "[[redirectaway]]": f"{state.base_url}/redirect/away/{name}",
        "[[garbagedata]]": "data:image/png;base64,@@this is not base64@@",
        "[[fileurl]]": "file:///etc/passwd",
        "[[expired]]": f"{state.base_url}/files/expired-{name}",
        "[[hugefile]]": f"{state.base_url}/huge/{name}",
        "[[hugedata]]": "data:image/png;base64," + "A" * (8 * 1024 * 1024),
    }.get(marker, f"{state.base_url}/files/{name}")
    prediction.output = [url]


def _on_localhost(state: FakeReplicateState, path: str) -> str:
    """The same server under another host name: reachable, but not the base URL's host."""
    return state.base_url.replace("127.0.0.1", "localhost") + path


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 30, 200)).save(out, format="PNG")
    return out.getvalue()


def pixel_bomb(side: int = 13000) -> bytes:
    """A valid side x side RGB PNG of one colour: ~0.5 MB, 676 MB once decoded. Written row by row
    with zlib so building it never holds the decoded image either; built once per process."""
    if _BOMB:
        return _BOMB[0]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)  # filter byte + black pixels
    parts = [compressor.compress(row * 100) for _ in range(side // 100)]
    parts += [compressor.compress(row * (side % 100)), compressor.flush()]
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    _BOMB.append(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return _BOMB[0]
# --- hostile money modes (issue 11) -------------------------------------------------------------


class _LenientJSON(JSONResponse):
    """JSON that may carry NaN and Infinity, as a misbehaving provider's answers can."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=True, separators=(",", ":")).encode()


class _DroppedAnswer(Response):
    """Starts a 201 answer, then drops the connection: the client never learns the prediction's id."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionResetError("fake Replicate: connection dropped after the prediction was created")


def _metrics(state: FakeReplicateState, prediction: FakePrediction) -> dict[str, Any]:
    if prediction.predict_time is None:
        return {}
    reported = prediction.predict_time if state.reported_predict_time == REAL else state.reported_predict_time
    return {"predict_time": reported}


def _timestamps(prediction: FakePrediction) -> dict[str, Any]:
    """started_at / completed_at like Replicate's: the true run time, whatever `predict_time` says."""
    if prediction.predict_time is None:
        return {"started_at": prediction.created_at, "completed_at": None}
    created = datetime.fromisoformat(prediction.created_at)
    completed = created + timedelta(seconds=prediction.predict_time)
    return {"started_at": prediction.created_at, "completed_at": completed.isoformat().replace("+00:00", "Z")}


def _hostile_output(state: FakeReplicateState, output: Any) -> Any:
    if isinstance(output, str):
        return output.replace("{base}", state.base_url)
    if isinstance(output, list):
        return [_hostile_output(state, item) for item in output]
    return output
