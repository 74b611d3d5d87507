"""A local fake of a ComfyUI server (Starlette), for tests and benchmarks; never used in production.

It speaks the routes the ComfyUI backend uses, in ComfyUI's own formats: `POST /prompt` (with
`client_id`, an optional client-chosen `prompt_id` and `extra_data`; 400 with `node_errors` for
inputs out of range and `invalid_prompt` for unknown node classes), `/ws?clientId=` (`status`,
`execution_start`, `execution_cached`, `executing`, `progress`, `executed`, `execution_success`,
`execution_error`, `execution_interrupted`), `GET /history/{id}`, `GET /queue`, `POST /queue` with
`delete`, `POST /interrupt`, `GET /view`, `GET /object_info`, `GET /system_stats`.

Like ComfyUI it runs ONE prompt at a time from a FIFO queue; samplers report per-step progress
spread over `job_seconds`. Identical prompts run again are answered from the cache at once
(`execution_cached`). It keeps the bill: GPU seconds of every execution (from its own
`execution_start` to its end), so tests compare it with the ledger.

Failure injection: a text input containing `[[oom]]` fails in the sampler with CUDA out of memory,
`[[fail]]` with a RuntimeError, `[[valueerror]]` with a ValueError (an error of the inputs); `restart()` drops the queue, the running job and the history
(a restart), closing every socket. Hostile modes (fields of `FakeComfyState`): `timestamps`
(what `timestamp` fields say instead of the time: "abc", NaN, -1e18), `huge_view` (/view streams
bytes for ever, no length), `endless_ws` (a job reports progress for ever and never finishes),
`output_scale` (the image comes out this many times the size asked), `garbage_progress` (each
step also sends progress with garbage numbers and an unknown node), `submit_500` (the next
submits are queued, then answered 500: the answer is lost), `down` (every HTTP answer is 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

OOM_MESSAGE = "CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 23.65 GiB total capacity)"


def _input(kind: str, **options: Any) -> list[Any]:
    return [kind, options]


# A subset of ComfyUI's /object_info, in its format.
OBJECT_INFO: dict[str, dict[str, Any]] = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd_xl_base_1.0.safetensors"], {}]}},
                               "output": ["MODEL", "CLIP", "VAE"], "output_node": False},
    "CLIPTextEncode": {"input": {"required": {"text": _input("STRING", multiline=True), "clip": ["CLIP"]}},
                       "output": ["CONDITIONING"], "output_node": False},
    "EmptyLatentImage": {"input": {"required": {"width": _input("INT", min=16, max=16384, step=8),
                                                "height": _input("INT", min=16, max=16384, step=8),
                                                "batch_size": _input("INT", min=1, max=4096)}},
                         "output": ["LATENT"], "output_node": False},
    "KSampler": {"input": {"required": {
        "model": ["MODEL"], "seed": _input("INT", min=0, max=0xFFFFFFFFFFFFFFFF),
        "steps": _input("INT", min=1, max=10000), "cfg": _input("FLOAT", min=0.0, max=100.0),
        "sampler_name": [["euler", "dpmpp_2m"], {}], "scheduler": [["normal", "karras"], {}],
        "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
        "denoise": _input("FLOAT", min=0.0, max=1.0)}}, "output": ["LATENT"], "output_node": False},
    "VAEDecode": {"input": {"required": {"samples": ["LATENT"], "vae": ["VAE"]}}, "output": ["IMAGE"],
                  "output_node": False},
    "EmptyImage": {"input": {"required": {"width": _input("INT", min=1, max=16384), "height": _input("INT", min=1, max=16384),
                                          "batch_size": _input("INT", min=1, max=4096),
                                          "color": _input("INT", min=0, max=0xFFFFFF)}},
                   "output": ["IMAGE"], "output_node": False},
    "ImageBlur": {"input": {"required": {"image": ["IMAGE"], "blur_radius": _input("INT", min=1, max=31),
                                         "sigma": _input("FLOAT", min=0.1, max=10.0)}},
                  "output": ["IMAGE"], "output_node": False},
    "ImageScaleBy": {"input": {"required": {"image": ["IMAGE"], "upscale_method": [["nearest-exact", "bilinear"], {}],
                                            "scale_by": _input("FLOAT", min=0.01, max=8.0)}},
                     "output": ["IMAGE"], "output_node": False},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": _input("STRING")}},
                  "output": [], "output_node": True},
    "PreviewImage": {"input": {"required": {"images": ["IMAGE"]}}, "output": [], "output_node": True},
    "SaveLatent": {"input": {"required": {"samples": ["LATENT"], "filename_prefix": _input("STRING")}},
                   "output": [], "output_node": True},
}
SAMPLERS = frozenset({"KSampler"})


@dataclass
class Job:
    prompt_id: str
    number: int
    prompt: dict[str, Any]
    client_id: str
    extra_data: dict[str, Any]
    interrupted: bool = False


@dataclass
class FakeComfyState:
    job_seconds: float = 0.2
    gpu_hour_usd: float = 3.6  # $0.001 per GPU second: what the fake's bill is computed at
    base_url: str = ""
    timestamps: Any = None
    huge_view: bool = False
    endless_ws: bool = False
    output_scale: float = 1.0
    submit_500: int = 0
    down: bool = False
    garbage_progress: bool = False
    pending: list[Job] = field(default_factory=list)
    running: Job | None = None
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    gpu_seconds: dict[str, float] = field(default_factory=dict)  # the bill: prompt id -> GPU seconds
    interrupts: int = 0
    deletes: list[str] = field(default_factory=list)
    max_running_seen: int = 0
    max_in_server: int = 0  # most prompts queued or running at once
    progress_sent: int = 0
    restarts: int = 0
    first_start: float | None = None  # time.monotonic() of the first execution_start, for benchmarks
    last_end: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _number: int = 0
    _sockets: dict[str, set[asyncio.Queue]] = field(default_factory=dict)
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _worker: asyncio.Task | None = None
    _cache: set[str] = field(default_factory=set)
    _created_for: dict[str, str] = field(default_factory=dict)

    @property
    def creations(self) -> Counter:
        """Prompts queued per request (the request hash the backend puts in `extra_data`): the
        "never created twice" money invariant; a prompt without one counts under its own id."""
        return Counter(self._created_for.get(prompt_id, prompt_id) for prompt_id in self.submitted)

    def drop_next_create_answer(self) -> None:
        """The next prompt is queued, then its answer is lost (HTTP 500)."""
        self.submit_500 += 1

    @property
    def bill_usd(self) -> float:
        return sum(self.gpu_seconds.values()) * self.gpu_hour_usd / 3600.0

    def restart(self) -> None:
        """Like a crash and restart of ComfyUI: the queue, the running job and the history are lost."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._restart(), self._loop).result(timeout=10)

    async def _restart(self) -> None:
        self.restarts += 1
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        self.pending.clear()
        self.running = None
        self.history.clear()
        self._cache.clear()
        for queues in self._sockets.values():
            for queue in queues:
                queue.put_nowait(None)  # closes the socket
        self._worker = asyncio.get_running_loop().create_task(self._work())

    # -- the worker: one prompt at a time -------------------------------------------------------
    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = self.pending.pop(0)
            self.running = job
            self.max_running_seen = max(self.max_running_seen, 1)
            try:
                await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must not kill its worker silently
                print(f"fake ComfyUI: job {job.prompt_id} crashed: {exc!r}")
            finally:
                self.running = None
                self._broadcast_status()

    async def _execute(self, job: Job) -> None:
        messages: list[list[Any]] = []
        real_ms: list[int] = []  # the true stamps of start and end: the bill

        def send(kind: str, **data: Any) -> None:
            data = {"prompt_id": job.prompt_id, **data}
            if kind in ("execution_start", "execution_cached", "execution_success", "execution_error",
                        "execution_interrupted"):
                now_ms = int(time.time() * 1000)
                if kind != "execution_cached":
                    real_ms.append(now_ms)
                data["timestamp"] = now_ms if self.timestamps is None else self.timestamps
                messages.append([kind, data])
            self._send(job.client_id, {"type": kind, "data": data})

        def finish(status: str) -> None:
            self.gpu_seconds[job.prompt_id] = (real_ms[-1] - real_ms[0]) / 1000.0
            self.last_end = time.monotonic()
            self.history[job.prompt_id] = {
                "prompt": [job.number, job.prompt_id, job.prompt, job.extra_data, _output_nodes(job.prompt)],
                "outputs": outputs, "status": {"status_str": status, "completed": status == "success", "messages": messages},
                "meta": {},
            }

        outputs: dict[str, Any] = {}
        self.first_start = self.first_start or time.monotonic()
        send("execution_start")
        key = json.dumps(job.prompt, sort_keys=True)
        cached = key in self._cache
        if cached:
            send("execution_cached", nodes=sorted(job.prompt))
        texts = " ".join(str(n["inputs"].get("text", "")) for n in job.prompt.values())
        samplers = [nid for nid, node in sorted(job.prompt.items()) if node["class_type"] in SAMPLERS]
        total_steps = sum(int(job.prompt[nid]["inputs"]["steps"]) for nid in samplers) or 1
        pause = self.job_seconds / total_steps if samplers else self.job_seconds
        width, height = _size(job.prompt, self.output_scale)
        for node_id in [] if cached else _order(job.prompt):
            node = job.prompt[node_id]
            send("executing", node=node_id, display_node=node_id)
            if node["class_type"] in SAMPLERS:
                steps = int(node["inputs"]["steps"])
                value = 0
                while value < steps or self.endless_ws:
                    await asyncio.sleep(pause if not self.endless_ws else 0.005)
                    if job.interrupted:
                        send("execution_interrupted", node_id=node_id, node_type=node["class_type"], executed=[])
                        finish("error")
                        return
                    value = value + 1 if value < steps else 1
                    self.progress_sent += 1
                    if self.garbage_progress:
                        for value_, max_ in (("abc", steps), (value, -5), (math.nan, steps), (10**12, 10**13),
                                             (True, steps), (value, None)):
                            send("progress", value=value_, max=max_, node=node_id)
                        send("progress", value=value, max=steps, node="no-such-node" * 50)
                    send("progress", value=value, max=steps, node=node_id)
                    if "[[oom]]" in texts or "[[fail]]" in texts or "[[valueerror]]" in texts:
                        oom, value_error = "[[oom]]" in texts, "[[valueerror]]" in texts
                        message, kind_ = ((OOM_MESSAGE, "torch.OutOfMemoryError") if oom else
                                          ("image size must be a multiple of 8", "ValueError") if value_error else
                                          ("mat1 and mat2 shapes cannot be multiplied", "RuntimeError"))
                        send("execution_error", node_id=node_id, node_type=node["class_type"], executed=[],
                             exception_message=message, exception_type=kind_,
                             traceback=["Traceback (most recent call last):", "..."], current_inputs={}, current_outputs={})
                        finish("error")
                        return
            elif not samplers and node["class_type"] == "ImageBlur":
                await asyncio.sleep(pause)
                if job.interrupted:
                    send("execution_interrupted", node_id=node_id, node_type=node["class_type"], executed=[])
                    finish("error")
                    return
        for node_id in _output_nodes(job.prompt):
            name = f"{node_id}_{job.prompt_id}_00001_.png"
            self.files[name] = _png(width, height)
            outputs[node_id] = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
            send("executed", node=node_id, display_node=node_id, output=outputs[node_id])
        send("execution_success")
        self._cache.add(key)
        finish("success")

    # -- sockets --------------------------------------------------------------------------------
    def _send(self, client_id: str, message: dict[str, Any]) -> None:
        for queue in self._sockets.get(client_id, set()):
            queue.put_nowait(message)

    def _broadcast_status(self) -> None:
        remaining = len(self.pending) + (1 if self.running else 0)
        for client_id, queues in self._sockets.items():
            for queue in queues:
                queue.put_nowait({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}},
                                                             "sid": client_id}})


def _order(prompt: dict[str, Any]) -> list[str]:
    """Nodes in dependency order (ComfyUI executes from the outputs back; any topological order will do)."""
    done: list[str] = []

    def visit(node_id: str, seen: frozenset[str]) -> None:
        if node_id in done or node_id in seen or node_id not in prompt:
            return
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                visit(value[0], seen | {node_id})
        done.append(node_id)

    for node_id in sorted(prompt):
        visit(node_id, frozenset())
    return done


def _output_nodes(prompt: dict[str, Any]) -> list[str]:
    return [nid for nid, node in sorted(prompt.items())
            if OBJECT_INFO.get(node["class_type"], {}).get("output_node") and node["class_type"] != "SaveLatent"]


def _size(prompt: dict[str, Any], scale: float) -> tuple[int, int]:
    width = height = 64
    for node in prompt.values():
        if node["class_type"] in ("EmptyLatentImage", "EmptyImage"):
            width, height = int(node["inputs"]["width"]), int(node["inputs"]["height"])
    for node in prompt.values():
        if node["class_type"] == "ImageScaleBy":
            scale *= float(node["inputs"]["scale_by"])
    return max(1, round(width * scale)), max(1, round(height * scale))


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    gradient = Image.linear_gradient("L")  # not blank: the asset checks pass
    bands = (gradient, gradient.transpose(Image.Transpose.ROTATE_90), gradient)
    Image.merge("RGB", bands).resize((width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _json(content: Any, status: int = 200) -> Response:
    # allow_nan: the hostile timing modes send NaN as ComfyUI's own json.dumps would
    return Response(json.dumps(content, allow_nan=True), status_code=status, media_type="application/json")


def _validate(prompt: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(error, node_errors) in ComfyUI's shapes for a prompt that cannot be queued, else (None, {})."""
    if not isinstance(prompt, dict) or not prompt:
        return {"type": "invalid_prompt", "message": "Invalid prompt", "details": "no nodes", "extra_info": {}}, {}
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or node.get("class_type") not in OBJECT_INFO:
            klass = node.get("class_type") if isinstance(node, dict) else None
            return {"type": "invalid_prompt", "message": f"Cannot execute because node {klass} does not exist.",
                    "details": f"Node ID '#{node_id}'", "extra_info": {}}, {}
    if not _output_nodes(prompt) and not any(n["class_type"] == "SaveLatent" for n in prompt.values()):
        return {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, {}
    node_errors: dict[str, Any] = {}
    for node_id, node in prompt.items():
        spec = OBJECT_INFO[node["class_type"]]["input"]["required"]
        errors = []
        for name, (kind, *rest) in spec.items():
            value = node.get("inputs", {}).get(name)
            options = rest[0] if rest else {}
            if value is None:
                errors.append({"type": "required_input_missing", "message": "Required input is missing",
                               "details": name, "extra_info": {"input_name": name}})
            elif kind in ("INT", "FLOAT") and not isinstance(value, list):
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    errors.append({"type": "invalid_input_type", "message": "Failed to convert an input value",
                                   "details": f"{name}, {value!r}", "extra_info": {"input_name": name}})
                elif value > options.get("max", math.inf):
                    errors.append({"type": "value_bigger_than_max", "message": "Value bigger than max",
                                   "details": f"{name} {value} > {options['max']}", "extra_info": {"input_name": name}})
                elif value < options.get("min", -math.inf):
                    errors.append({"type": "value_smaller_than_min", "message": "Value smaller than min",
                                   "details": f"{name} {value} < {options['min']}", "extra_info": {"input_name": name}})
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": _output_nodes(prompt),
                                    "class_type": node["class_type"]}
    if node_errors:
        return {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                "details": "", "extra_info": {}}, node_errors
    return None, {}


def build_app(state: FakeComfyState) -> Starlette:
    def down() -> Response | None:
        return Response("Service Unavailable", status_code=503) if state.down else None

    async def post_prompt(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        body = await request.json()
        error, node_errors = _validate(body.get("prompt"))
        if error is not None:
            return _json({"error": error, "node_errors": node_errors}, 400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        state._number += 1
        job = Job(prompt_id, state._number, body["prompt"], str(body.get("client_id") or ""),
                  body.get("extra_data") or {})
        state.pending.append(job)
        state.submitted.append(prompt_id)
        marker = job.extra_data.get("asset_pipeline_request_hash")
        if isinstance(marker, str):
            state._created_for[prompt_id] = marker
        state.max_in_server = max(state.max_in_server, len(state.pending) + (1 if state.running else 0))
        assert state._wake is not None
        state._wake.set()
        state._broadcast_status()
        if state.submit_500 > 0:
            state.submit_500 -= 1
            return Response("Internal Server Error", status_code=500)
        return _json({"prompt_id": prompt_id, "number": job.number, "node_errors": {}})

    def item(job: Job) -> list[Any]:
        return [job.number, job.prompt_id, job.prompt, job.extra_data, _output_nodes(job.prompt)]

    async def get_queue(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        return _json({"queue_running": [item(state.running)] if state.running else [],
                      "queue_pending": [item(job) for job in state.pending]})

    async def post_queue(request: Request) -> Response:
        body = await request.json()
        for prompt_id in body.get("delete", []):
            state.deletes.append(prompt_id)
            state.pending[:] = [job for job in state.pending if job.prompt_id != prompt_id]
        if body.get("clear"):
            state.pending.clear()
        return Response(status_code=200)

    async def post_interrupt(request: Request) -> Response:
        raw = await request.body()
        wanted = json.loads(raw).get("prompt_id") if raw else None
        state.interrupts += 1
        if state.running is not None and wanted in (None, state.running.prompt_id):
            state.running.interrupted = True
        return Response(status_code=200)

    async def get_history(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        prompt_id = request.path_params["prompt_id"]
        return _json({prompt_id: state.history[prompt_id]} if prompt_id in state.history else {})

    async def get_all_history(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        return _json(state.history)

    async def get_view(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        name = request.query_params.get("filename", "")
        if state.huge_view:
            async def endless():
                yield _png(8, 8)[:64]
                while True:
                    yield b"\0" * 65536
                    await asyncio.sleep(0)
            return StreamingResponse(endless(), media_type="image/png")
        if name not in state.files or request.query_params.get("type") != "output":
            return Response(status_code=404)
        return Response(state.files[name], media_type="image/png")

    async def get_object_info(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        return _json(OBJECT_INFO)

    async def get_system_stats(request: Request) -> Response:
        if (answer := down()) is not None:
            return answer
        return _json({"system": {"os": "fake", "comfyui_version": "fake-0", "python_version": "3"},
                      "devices": [{"name": "cuda:0 fake", "type": "cuda", "vram_total": 25769803776}]})

    async def websocket(socket: WebSocket) -> None:
        client_id = socket.query_params.get("clientId") or uuid.uuid4().hex
        await socket.accept()
        queue: asyncio.Queue = asyncio.Queue()
        state._sockets.setdefault(client_id, set()).add(queue)
        remaining = len(state.pending) + (1 if state.running else 0)
        queue.put_nowait({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}},
                                                     "sid": client_id}})
        reader = asyncio.get_running_loop().create_task(socket.receive_text())
        try:
            while True:
                getter = asyncio.get_running_loop().create_task(queue.get())
                finished, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in finished:
                    getter.cancel()
                    break
                message = getter.result()
                if message is None:
                    await socket.close(code=1012)  # service restart
                    break
                await socket.send_text(json.dumps(message, allow_nan=True))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            reader.cancel()
            state._sockets.get(client_id, set()).discard(queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state._loop = asyncio.get_running_loop()
        state._wake = asyncio.Event()
        state._worker = state._loop.create_task(state._work())
        yield
        state._worker.cancel()

    return Starlette(routes=[
        Route("/prompt", post_prompt, methods=["POST"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/interrupt", post_interrupt, methods=["POST"]),
        Route("/history", get_all_history, methods=["GET"]),
        Route("/history/{prompt_id}", get_history, methods=["GET"]),
        Route("/view", get_view, methods=["GET"]),
        Route("/object_info", get_object_info, methods=["GET"]),
        Route("/system_stats", get_system_stats, methods=["GET"]),
        WebSocketRoute("/ws", websocket),
    ], lifespan=lifespan)
