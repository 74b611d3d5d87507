"""The ComfyUI backend: the user's own workflow on their own ComfyUI server(s), metered in GPU time.

For one image: take a slot on the least-loaded server (`comfyui_servers.py`), open its event
stream, `POST /prompt` the workflow with the request's fields filled in (`comfyui_workflow.py`),
journal `<prompt_id>@<server>` the moment the answer names it (so a run that dies re-attaches
through `/history` instead of paying again), follow per-node `progress` to the hub, read the
finished job from `/history`, download the image through `/view` (bounded) and fit it to the spec's
size, keeping the original. GPU time (`comfyui_billing.py`) x $/GPU-hour is the cost; the
reservation covers the longest job.

Failures, classified by `generation/failures.py` from what is raised here:
    server unreachable, 5xx, restarting    ProviderError without status -> transient (breaker)
    answer to /prompt lost                 CreateOutcomeUnknown: `find_prediction` looks for it by
                                           the request hash carried in `extra_data`
    node_errors on submit                  ProviderError 400 naming node and input -> invalid input
    out of memory in execution_error       PaidFailure "out of memory" -> fewer steps
    a node raised ValueError, KeyError...  PaidFailure(input_error) -> invalid input, fail, GPU time paid
    any other execution_error              PaidFailure -> transient (a GPU hiccup may not recur)
    job vanished from queue and history    PaidFailure, nothing billed -> transient, a new prompt
    output not the requested size          fitted like Replicate's (original kept) or refused
A terminated run deletes its prompt from the queue, or interrupts it if it is running.

The longest module of the package, on purpose: one job's life (submit, follow the event stream and
`/queue` + `/history`, stop, fetch, fit) is one sequence over shared state, and cutting it up would
scatter the re-attach and billing rules. The HTTP client, the workflow and its mapping, the choice
of server and the GPU-time billing each live in their own `comfyui_*` module.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.sync.client import ClientConnection

from asset_pipeline.errors import (
    ConfigurationError,
    CreateOutcomeUnknown,
    GenerationError,
    OutputNotFetched,
    OutputRefused,
    PaidFailure,
    PaidInvalidImage,
    ProviderError,
)
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.comfyui_billing import GpuTime, gpu_time, status_messages
from asset_pipeline.generation.comfyui_client import (
    ComfyClient,
    ComfyHTTPError,
    ComfyUnreachable,
    ViewRefused,
    new_prompt_id,
    next_event,
)
from asset_pipeline.generation.comfyui_servers import ServerPool
from asset_pipeline.generation.comfyui_workflow import Workflow
from asset_pipeline.generation.progress import ProgressClock
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.imaging.bounded import read_header
from asset_pipeline.imaging.fit import fit_to_png

REQUEST_KEY = "asset_pipeline_request_hash"  # in each prompt's extra_data: finds a prompt whose answer was lost
RATIO_TOLERANCE = 0.05  # an output may differ this much from the requested aspect ratio and still be fitted
MAX_UPSCALE = 1.1
DRAIN_S = 0.5  # how long a finished job's last events are waited for


@dataclass(frozen=True)
class ComfyUIConfig:
    urls: list[str]
    workflow: Workflow
    gpu_hour_usd: float
    max_job_seconds: float
    queue_depth: int = 2
    poll_interval_s: float = 0.5
    outage_s: float = 30.0  # a server unreachable this long during one job fails the attempt (transient)
    max_download_bytes: int = 50 * 1024 * 1024
    download_timeout_s: float = 120.0
    max_output_pixels: int = 40_000_000


class _Stopped(Exception):
    pass


class ComfyUIBackend(ImageBackend):
    name = "comfyui"
    is_paid = True  # GPU seconds x gpu_hour_usd go through the ledger and its caps (0 USD on an owned GPU)

    def __init__(self, config: ComfyUIConfig):
        self.config = config
        self.workflow = config.workflow
        self._clients = {url: ComfyClient(url) for url in config.urls}
        self._pool = ServerPool(config.urls, depth=config.queue_depth)
        self._validated: set[str] = set()
        self._lock = threading.Lock()

    # -- the interface ----------------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return f"comfyui:{self.workflow.name}"

    @property
    def request_variant(self) -> str:
        return self.workflow.variant

    def cost_usd(self, seconds: float) -> float:
        return seconds * self.config.gpu_hour_usd / 3600.0

    def reservation_usd(self, model: str) -> float:
        return self.cost_usd(self.config.max_job_seconds)

    def check_models(self, models: list[str]) -> None:
        """Only the workflow's own model; and the workflow is checked against every server that
        answers now (the others before their first prompt)."""
        others = sorted({model for model in models if model != self.default_model})
        if others:
            raise ConfigurationError(
                "ASSET_PIPELINE_MODEL",
                f"the comfyui backend runs the workflow in ASSET_PIPELINE_COMFYUI_WORKFLOW ({self.default_model}); "
                f"it cannot use {', '.join(others)} (leave ASSET_PIPELINE_MODEL and the fallback models unset)")
        for url in self.config.urls:
            try:
                self._validate(url)
            except (ComfyUnreachable, ComfyHTTPError):
                continue

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        if session.resume_prediction_id is not None:
            prompt_id, url = _split(session.resume_prediction_id)
            return self._finish(request, session, self._client(url), prompt_id, None)
        with self._pool.slot(session.cancelled) as slot:
            if slot is None:
                raise GenerationError(request.partition_key, "run terminated while waiting for a ComfyUI server")
            return self._submit_and_finish(request, session, slot)

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        """A prompt for exactly this request (its hash is in `extra_data`) that a dead run or a lost
        answer left queued, running or finished on one of the servers."""
        for url, client in self._clients.items():
            try:
                running, pending = client.queue()
                history = client.recent_history()
            except (ComfyUnreachable, ComfyHTTPError) as exc:
                raise ProviderError(request.partition_key, f"ComfyUI at {url} cannot be searched for a lost prompt "
                                    f"({_describe(exc)})") from None
            items = [*running, *pending] + [entry.get("prompt") for entry in history.values() if isinstance(entry, dict)
                                            and _status(entry) != "error"]
            for item in items:
                if not (isinstance(item, list) and len(item) >= 4 and isinstance(item[1], str)):
                    continue
                extra = item[3] if isinstance(item[3], dict) else {}
                prediction_id = f"{item[1]}@{url}"
                if extra.get(REQUEST_KEY) == request.request_hash and prediction_id not in exclude:
                    return prediction_id
        return None

    def billed_for(self, request: GenerationRequest, prediction_id: str) -> float | None:
        prompt_id, url = _split(prediction_id)
        client = self._client(url)
        try:
            entry = client.history(prompt_id)
            if entry is None:
                running, pending = client.queue()
                if any(item[1] == prompt_id for item in [*running, *pending]):
                    return None  # not finished
                return 0.0  # the server has no record of it (lost in a restart): nothing was billed
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            raise ProviderError(request.partition_key, f"ComfyUI at {url}: {_describe(exc)}") from None
        return self.cost_usd(gpu_time(entry, observed_s=None, max_job_seconds=self.config.max_job_seconds).seconds)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- one job --------------------------------------------------------------------------------
    def _submit_and_finish(self, request: GenerationRequest, session: RenderSession, url: str) -> RenderedImage:
        client = self._client(url)
        key = request.partition_key
        try:
            self._validate(url)
        except ConfigurationError as exc:
            raise ProviderError(key, str(exc), status=400) from None
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            self._pool.avoid(url)
            raise ProviderError(key, f"ComfyUI at {url} is down or restarting ({_describe(exc)})") from None
        prompt_id = new_prompt_id()
        try:
            events = client.events(prompt_id)  # before submitting: no event of the job is missed
        except ComfyUnreachable as exc:
            self._pool.avoid(url)
            raise ProviderError(key, f"ComfyUI at {url} is down or restarting ({exc})") from None
        try:
            try:
                submitted = client.submit(self.workflow.prompt_for(request), client_id=prompt_id, prompt_id=prompt_id,
                                          extra_data={REQUEST_KEY: request.request_hash})
            except ComfyUnreachable as exc:
                self._pool.avoid(url)
                if exc.sent:
                    raise _unknown(key, url, str(exc)) from None
                raise ProviderError(key, f"ComfyUI at {url} is down or restarting ({exc})") from None
            except ComfyHTTPError as exc:
                raise self._refused(key, url, exc) from None
            session.on_created(f"{submitted.prompt_id}@{url}")
            return self._finish(request, session, client, submitted.prompt_id, events)
        finally:
            events.close()

    def _refused(self, key: str, url: str, exc: ComfyHTTPError) -> GenerationError:
        body = exc.body if isinstance(exc.body, dict) else {}
        if exc.status == 400 and ("node_errors" in body or "error" in body):
            return ProviderError(key, f"ComfyUI at {url} refused the workflow: {_node_errors(body, self.workflow)}",
                                 status=400)
        if exc.status >= 500 or exc.status == 200:
            return _unknown(key, url, f"answered /prompt with HTTP {exc.status} ({exc.text[:120]})")
        return ProviderError(key, f"ComfyUI at {url} answered /prompt with HTTP {exc.status}", status=exc.status)

    def _finish(self, request: GenerationRequest, session: RenderSession, client: ComfyClient, prompt_id: str,
                events: ClientConnection | None) -> RenderedImage:
        prediction_id = f"{prompt_id}@{client.url}"
        entry, observed = self._follow(request, session, client, prompt_id, events)
        took = gpu_time(entry, observed_s=observed, max_job_seconds=self.config.max_job_seconds)
        cost = self.cost_usd(took.seconds)
        status = _status(entry)
        if status != "success":
            raise PaidFailure(request.partition_key, f"prompt {prediction_id} {_failure(entry, self.workflow)}",
                              billed_usd=cost, prediction_id=prediction_id, billing_note=took.note,
                              input_error=_deterministic(entry))
        image = self._output_image(request, entry, prediction_id, cost)
        try:
            data = client.view(image, max_bytes=self.config.max_download_bytes, timeout_s=self.config.download_timeout_s)
        except ViewRefused as exc:
            raise OutputRefused(request.partition_key, f"prompt {prediction_id}: {exc}", prediction_id=prediction_id,
                                billed_usd=cost) from None
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            raise OutputNotFetched(request.partition_key, f"prompt {prediction_id} finished but its image could not be "
                                   f"downloaded ({_describe(exc)})", prediction_id=prediction_id,
                                   provider_billed_usd=cost) from None
        png, fmt = self._fit(request, prediction_id, data, cost)
        return RenderedImage(png=png, model=request.model, cost_usd=cost, prediction_id=prediction_id,
                             original=data, original_format=fmt, billing_note=took.note)

    def _follow(self, request: GenerationRequest, session: RenderSession, client: ComfyClient, prompt_id: str,
                events: ClientConnection | None) -> tuple[dict[str, Any], float | None]:
        """Wait for the job to finish; return its history entry and the GPU seconds seen running.

        Events drive progress and say when to look at `/history`; `/queue` then `/history` (in that
        order: ComfyUI moves a job from one to the other atomically) are the truth, read every few
        polls anyway, so a broken or silent event stream never hides the end or the loss of a job.
        """
        config, key = self.config, request.partition_key
        clock = ProgressClock(self.workflow.planned_stages(request), started_at=time.monotonic())
        submitted_at = time.monotonic()
        started: float | None = None
        down_since: float | None = None
        own_stream = events is None
        if events is None:
            events = self._reconnect(client, prompt_id)
        last_check, check_now, final_seen = 0.0, True, False
        try:
            while True:
                now = time.monotonic()
                if session.cancelled.is_set():
                    self._stop(request, client, prompt_id, started, "run terminated")
                if started is not None and now - started > config.max_job_seconds:
                    self._stop(request, client, prompt_id, started, f"ran over {config.max_job_seconds:g} s")
                if started is None and now - submitted_at > config.max_job_seconds * (config.queue_depth + 1):
                    self._stop(request, client, prompt_id, started, f"still queued after {now - submitted_at:.0f} s")
                if events is None and now - last_check >= config.poll_interval_s:
                    events, own_stream = self._reconnect(client, prompt_id), True
                if events is not None:
                    try:
                        event = next_event(events, config.poll_interval_s)
                    except ComfyUnreachable:
                        events.close()
                        events, check_now = None, True
                        event = None
                    if event is not None:
                        started, finished = self._on_event(event, prompt_id, session, clock, started)
                        check_now, final_seen = check_now or finished, final_seen or finished
                else:
                    session.cancelled.wait(config.poll_interval_s)
                if not (check_now or time.monotonic() - last_check >= 5 * config.poll_interval_s):
                    continue
                last_check, check_now = time.monotonic(), False
                try:
                    where, entry = self._where(client, prompt_id)
                except (ComfyUnreachable, ComfyHTTPError) as exc:
                    down_since = down_since or time.monotonic()
                    if time.monotonic() - down_since > config.outage_s:
                        raise ProviderError(key, f"ComfyUI at {client.url} is down or restarting while prompt {prompt_id} "
                                            f"runs ({_describe(exc)})") from None
                    continue
                down_since = None
                if where == "done" and entry is not None:
                    ran = None if started is None else time.monotonic() - started
                    if events is not None and not final_seen:
                        self._drain(events, prompt_id, session, clock)
                    return entry, ran
                if where == "running" and started is None:
                    started = time.monotonic()
                    clock.restart(started)
                if where == "gone":
                    raise PaidFailure(key, f"prompt {prompt_id}@{client.url} vanished from the queue (server restarted?); "
                                      "the server has no record to bill, so nothing is charged",
                                      billed_usd=0.0, prediction_id=f"{prompt_id}@{client.url}")
        finally:
            if own_stream and events is not None:
                events.close()

    def _on_event(self, event: dict[str, Any], prompt_id: str, session: RenderSession, clock: ProgressClock,
                  started: float | None) -> tuple[float | None, bool]:
        """Handle one event; return the new start time and whether the job may have finished."""
        kind, data = event.get("type"), event["data"]
        if data.get("prompt_id") != prompt_id:
            return started, False
        if started is None and kind in ("execution_start", "executing", "progress"):
            started = time.monotonic()
            if kind != "progress" or data.get("value") == 1:  # not when re-attaching mid-job
                clock.restart(started)  # the ETA's pace counts from the job's start, not from its wait in the queue
        if kind in ("execution_success", "execution_error", "execution_interrupted"):
            return started, True
        if kind == "executing" and data.get("node") is None:
            return started, True  # older servers end a prompt with `executing` for no node
        if kind == "progress" and session.on_progress is not None:
            value, maximum, node = data.get("value"), data.get("max"), str(data.get("node"))[:40]
            if _count(value) and _count(maximum) and 0 < value and 0 < maximum <= 1_000_000:
                stage = self.workflow.stage(node) if node in self.workflow.nodes else f"node {node}"
                try:
                    session.on_progress(clock.step(stage, index=min(value, maximum) - 1, total=maximum,
                                                   now=time.monotonic()))
                except Exception:  # noqa: BLE001 - progress is best-effort and must never fail an image
                    pass
        return started, False

    def _drain(self, events: ClientConnection, prompt_id: str, session: RenderSession, clock: ProgressClock) -> None:
        """Report the progress events still on their way when `/history` said the job is done (the
        server writes its history before its last frames are sent), up to the job's final event and
        for at most `DRAIN_S`, so the last steps still reach the hub."""
        deadline = time.monotonic() + DRAIN_S
        for _ in range(10_000):
            try:
                event = next_event(events, max(0.0, deadline - time.monotonic()))
            except ComfyUnreachable:
                return
            if event is None:
                if time.monotonic() >= deadline:
                    return
                continue  # a preview frame
            _, finished = self._on_event(event, prompt_id, session, clock, 0.0)
            if finished:
                return

    def _where(self, client: ComfyClient, prompt_id: str) -> tuple[str, dict[str, Any] | None]:
        running, pending = client.queue()
        if any(item[1] == prompt_id for item in running):
            return "running", None
        if any(item[1] == prompt_id for item in pending):
            return "queued", None
        entry = client.history(prompt_id)
        return ("done", entry) if entry is not None else ("gone", None)

    def _stop(self, request: GenerationRequest, client: ComfyClient, prompt_id: str, started: float | None,
              why: str) -> None:
        """Delete the prompt from the queue or interrupt it; charge the GPU time it used. Raises."""
        prediction_id = f"{prompt_id}@{client.url}"
        action = "it was no longer queued"
        try:
            running, pending = client.queue()
            if any(item[1] == prompt_id for item in pending):
                client.delete_queued(prompt_id)
                action = "deleted from the queue"
            elif any(item[1] == prompt_id for item in running):
                client.interrupt(prompt_id)
                action = "interrupted"
            entry = None
            deadline = time.monotonic() + 5.0
            while action == "interrupted" and entry is None and time.monotonic() < deadline:
                entry = client.history(prompt_id)
                if entry is None:
                    time.sleep(0.05)
            if entry is None and action != "interrupted":
                entry = client.history(prompt_id)
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            raise GenerationError(request.partition_key, f"{why}; prompt {prediction_id} could not be stopped "
                                  f"({_describe(exc)})") from None
        observed = None if started is None else time.monotonic() - started
        took: GpuTime = gpu_time(entry, observed_s=observed, max_job_seconds=self.config.max_job_seconds)
        raise PaidFailure(request.partition_key, f"{why}: prompt {prediction_id} {action}",
                          billed_usd=self.cost_usd(took.seconds), prediction_id=prediction_id, billing_note=took.note)

    def _reconnect(self, client: ComfyClient, prompt_id: str) -> ClientConnection | None:
        try:
            return client.events(prompt_id)
        except ComfyUnreachable:
            return None

    def _output_image(self, request: GenerationRequest, entry: dict[str, Any], prediction_id: str,
                      cost: float) -> dict[str, Any]:
        outputs = entry.get("outputs")
        node = self.workflow.mapping.output.node
        found = outputs.get(node) if isinstance(outputs, dict) else None
        images = found.get("images") if isinstance(found, dict) else None
        image = images[0] if isinstance(images, list) and images else None
        if not isinstance(image, dict) or not isinstance(image.get("filename"), str):
            raise PaidFailure(request.partition_key, f"prompt {prediction_id} succeeded but output node {node} "
                              "produced no image", billed_usd=cost, prediction_id=prediction_id, final=True)
        return image

    def _fit(self, request: GenerationRequest, prediction_id: str, data: bytes, cost: float) -> tuple[bytes, str | None]:
        """The output fitted to the spec's size (an upscaler's 2x output is scaled down); refused,
        undecoded, when its header claims too many pixels or another aspect ratio."""
        def invalid(problem: str) -> PaidInvalidImage:
            return PaidInvalidImage(request.partition_key, f"prompt {prediction_id} {problem}", billed_usd=cost,
                                    prediction_id=prediction_id)

        try:
            header = read_header(data)
        except ValueError as exc:
            raise invalid(f"output is {exc}") from None
        if header.pixels > self.config.max_output_pixels:
            raise invalid(f"output claims {header.width}x{header.height} pixels, over the limit")
        if (header.width, header.height) != (request.width, request.height):
            off_ratio = abs(math.log((header.width / header.height) / (request.width / request.height))) \
                > math.log1p(RATIO_TOLERANCE)
            if off_ratio or max(request.width / header.width, request.height / header.height) > MAX_UPSCALE:
                raise invalid(f"returned {header.width}x{header.height}, expected {request.width}x{request.height}")
        try:
            fitted = fit_to_png(data, width=request.width, height=request.height, max_pixels=self.config.max_output_pixels)
        except ValueError as exc:
            raise invalid(f"output is {exc}") from None
        return fitted.png, fitted.original_format.lower() or None

    # -- servers --------------------------------------------------------------------------------
    def _client(self, url: str) -> ComfyClient:
        with self._lock:
            if url not in self._clients:  # a journaled prompt on a server no longer listed
                self._clients[url] = ComfyClient(url)
            return self._clients[url]

    def _validate(self, url: str) -> None:
        with self._lock:
            if url in self._validated:
                return
        self.workflow.check_against(self._client(url).object_info(), server=url)
        with self._lock:
            self._validated.add(url)


def _split(prediction_id: str) -> tuple[str, str]:
    prompt_id, _, url = prediction_id.partition("@")
    return prompt_id, url


def _status(entry: dict[str, Any]) -> str | None:
    status = entry.get("status")
    value = status.get("status_str") if isinstance(status, dict) else None
    if value is None and isinstance(status, dict) and status.get("completed") is True:
        return "success"
    return value if isinstance(value, str) else None


def _failure(entry: dict[str, Any], workflow: Workflow) -> str:
    """Why a finished job failed, from its status messages (ComfyUI's own words, shortened)."""
    messages = status_messages(entry)
    error = messages.get("execution_error")
    if error is not None:
        node = str(error.get("node_id"))[:40]
        where = f"node {node} ({workflow.title(node)})" if node in workflow.nodes else f"node {node}"
        text = f"{error.get('exception_type', '')}: {error.get('exception_message', '')}".strip(": ")
        if "out of memory" in text.lower() or "outofmemory" in text.lower():
            return f"ran out of memory in {where}: {text[:300]}"
        return f"failed in {where}: {text[:300]}"
    if "execution_interrupted" in messages:
        return "was interrupted on the server (not by this run)"
    return f"ended with status {str(_status(entry))[:40]}"


# A node that raised one of these fails the same way for the same inputs (a bad value, a missing
# model file): queueing the identical prompt again would only pay for the same error.
_DETERMINISTIC_ERRORS = frozenset({"ValueError", "TypeError", "KeyError", "IndexError", "AttributeError",
                                   "AssertionError", "FileNotFoundError", "NotImplementedError", "ZeroDivisionError"})


def _deterministic(entry: dict[str, Any]) -> bool:
    error = status_messages(entry).get("execution_error")
    exception_type = str(error.get("exception_type", "")) if isinstance(error, dict) else ""
    return exception_type.rsplit(".", 1)[-1] in _DETERMINISTIC_ERRORS


def _node_errors(body: dict[str, Any], workflow: Workflow) -> str:
    """ComfyUI's validation answer as one line naming each node and input."""
    parts = []
    node_errors = body.get("node_errors")
    for node_id, found in (node_errors.items() if isinstance(node_errors, dict) else []):
        errors = found.get("errors") if isinstance(found, dict) else None
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, dict):
                continue
            extra_info = error.get("extra_info")
            extra = extra_info if isinstance(extra_info, dict) else {}
            name = extra.get("input_name") or error.get("details") or "?"
            klass = found.get("class_type") or workflow.nodes.get(str(node_id), {}).get("class_type", "?")
            parts.append(f"node {str(node_id)[:40]} ({str(klass)[:60]}) input '{str(name)[:60]}': "
                         f"{str(error.get('message', ''))[:120]} ({str(error.get('details', ''))[:120]})")
    if not parts:
        error = body.get("error")
        if isinstance(error, dict):
            parts.append(f"{str(error.get('message', ''))[:200]} {str(error.get('details', ''))[:120]}".strip())
    return "; ".join(parts[:10]) or "refused without naming a node"


def _unknown(key: str, url: str, what: str) -> CreateOutcomeUnknown:
    return CreateOutcomeUnknown(key, f"ComfyUI at {url} {what} when asked to queue a prompt: it may be queued, so "
                                "its reservation stays open and the servers are searched for it before any new prompt")


def _describe(exc: Exception) -> str:
    if isinstance(exc, ComfyHTTPError):
        return exc.text[:160] if exc.status == 200 else f"HTTP {exc.status}"
    return str(exc)[:200]


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
