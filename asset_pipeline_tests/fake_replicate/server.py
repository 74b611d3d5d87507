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
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PER_IMAGE = {"black-forest-labs/flux-schnell": 0.003, "black-forest-labs/flux-dev": 0.025}
PER_SECOND = {"stability-ai/sdxl": 0.000975}
VERSIONS = {"abc123": "stability-ai/sdxl"}

LIST_PAGE_SIZE = 100


@dataclass
class FakePrediction:
    id: str
    model: str
    input: dict[str, Any]
    created: float
    status: str = "starting"
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
            if state.fail_creates:
                status = state.fail_creates.pop(0)
                headers = {"Retry-After": "1"} if status == 429 else None
                return problem(status, "Injected failure", f"injected HTTP {status}", headers)
            if state.create_failure_rate and state.random.random() < state.create_failure_rate:
                status = state.random.choice([429, 500, 503])
                return problem(status, "Injected failure", "Request was throttled. Expected available in 1 second."
                               if status == 429 else "injected server error", {"Retry-After": "1"} if status == 429 else None)
            if model in state.unavailable_models or (model not in PER_IMAGE and model not in PER_SECOND):
                return problem(404, "Model not found", f"no model {model}")
            if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
                return problem(422, "Invalid input", "prompt is required")
            now = time.monotonic()  # predictions finish on time even when nobody polls them
            running = sum(1 for p in state.predictions.values()
                          if p.status in ("starting", "processing") and now - p.created < state.latency_s)
            if state.max_running is not None and running >= state.max_running:
                return problem(429, "Too many requests", "throttled", {"Retry-After": "1"})
            prediction = FakePrediction(uuid.uuid4().hex[:20], model, inputs, time.monotonic())
            state.predictions[prediction.id] = prediction
            state.creations[_fingerprint(model, inputs)] += 1
        return JSONResponse(_as_json(state, prediction), status_code=201)

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
            prediction = state.predictions.get(request.path_params["id"])
            if prediction is None:
                return problem(404, "Not found", "no such prediction")
            _advance(state, prediction)
            then(prediction)
            return JSONResponse(_as_json(state, prediction))

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
        return JSONResponse({"previous": None, "results": results,
                             "next": f"{state.base_url}/v1/predictions?cursor={offset + LIST_PAGE_SIZE}" if more else None})

    async def cancel(request: Request) -> Response:
        return existing(request, _cancel)

    async def file(request: Request) -> Response:
        data = state.files.get(request.path_params["name"])
        if data is None:
            return problem(404, "Not found", "file expired")
        return Response(data, media_type="application/octet-stream")

    return Starlette(routes=[
        Route("/v1/models/{owner}/{name}/predictions", create_for_model, methods=["POST"]),
        Route("/v1/predictions", create_for_version, methods=["POST"]),
        Route("/v1/predictions", list_predictions, methods=["GET"]),
        Route("/v1/predictions/{id}", get, methods=["GET"]),
        Route("/v1/predictions/{id}/cancel", cancel, methods=["POST"]),
        Route("/files/{name}", file, methods=["GET"]),
    ])


def _fingerprint(model: str, inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([model, inputs], sort_keys=True).encode()).hexdigest()


def _advance(state: FakeReplicateState, prediction: FakePrediction) -> None:
    """Finish a prediction once its latency has passed."""
    if prediction.status not in ("starting", "processing"):
        return
    elapsed = time.monotonic() - prediction.created
    if elapsed < state.latency_s:
        prediction.status = "processing" if elapsed > state.latency_s / 2 else "starting"
        return
    prediction.predict_time = state.latency_s
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
        "metrics": {"predict_time": prediction.predict_time} if prediction.predict_time is not None else {},
        "created_at": prediction.created_at,
        "urls": {
            "get": f"{state.base_url}/v1/predictions/{prediction.id}",
            "cancel": f"{state.base_url}/v1/predictions/{prediction.id}/cancel",
        },
    }
