"""The hosted Replicate backend, through the official `replicate` client.

Create the prediction without waiting, hand its id to the journal at once, poll it to a final
state (cancelling it when the run is terminated or it runs too long), download the output at once
(Replicate deletes it after an hour) and fit it to the spec's exact size. `replicate.run` is not
used: it returns `None` output when the server answers `processing` after its wait.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import replicate
from replicate.exceptions import ReplicateError

from asset_pipeline.errors import OutputNotFetched, ProviderError
from asset_pipeline.generation.backend import ImageBackend, PaidFailure, RenderedImage, RenderSession
from asset_pipeline.generation.pricing import (
    ModelPrice,
    billed_usd,
    model_name,
    nearest_aspect_ratio,
    price_for,
    reservation_usd,
)
from asset_pipeline.generation.progress import ProgressClock
from asset_pipeline.generation.provider_logs import step_from_logs
from asset_pipeline.generation.replicate_config import base_url, check_base_url, explain_http_error, explain_unreachable
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.imaging.fit import fit_to_png

DEFAULT_REPLICATE_MODEL = "black-forest-labs/flux-schnell"
MAX_LIST_PAGES = 20  # 2,000 predictions back: far more than one crash can leave behind
FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


class ReplicateBackend(ImageBackend):
    name = "replicate"
    is_paid = True

    def __init__(
        self,
        *,
        api_token: str | None,
        prices: dict[str, ModelPrice],
        max_predict_seconds: float,
        poll_interval_s: float,
        transport: httpx.BaseTransport | None = None,
    ):
        check_base_url(base_url())  # a /v1 suffix would send every request to /v1/v1/...
        extra = {"transport": transport} if transport is not None else {}
        # The client's errors carry the RFC 7807 body but not the headers; a response hook keeps
        # each thread's last Retry-After so a 429 can wait exactly as long as Replicate asks.
        self._last_retry_after = threading.local()
        self._client = replicate.Client(api_token=api_token, event_hooks={"response": [self._remember_retry_after]}, **extra)
        # Output files are fetched without the API token: delivery URLs need none, and the token
        # must never travel to another host.
        self._downloads = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True, **extra)
        self._prices = prices
        self._max_predict_seconds = max_predict_seconds
        self._poll_interval_s = poll_interval_s

    @property
    def default_model(self) -> str:
        return DEFAULT_REPLICATE_MODEL

    def reservation_usd(self, model: str) -> float:
        return reservation_usd(price_for(self._prices, model), max_predict_seconds=self._max_predict_seconds)

    def check_models(self, models: list[str]) -> None:
        for model in models:
            price_for(self._prices, model)

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        price = price_for(self._prices, request.model)
        if session.resume_prediction_id is not None:
            prediction = self._call(request, lambda: self._client.predictions.get(session.resume_prediction_id))
        else:
            prediction = self._create(request, price)
            session.on_created(prediction.id)
        prediction = self._wait(request, prediction, session)
        predict_time = (prediction.metrics or {}).get("predict_time")
        if prediction.status != "succeeded":
            reason = f"prediction {prediction.id} {prediction.status}"
            if prediction.error:
                reason += f": {str(prediction.error)[:300]}"
            raise PaidFailure(
                request.partition_key, reason,
                billed_usd=billed_usd(price, succeeded=False, predict_time_s=predict_time),
                prediction_id=prediction.id,
            )
        cost = billed_usd(price, succeeded=True, predict_time_s=predict_time)
        data = self._download(request, prediction.id, prediction.output)
        try:
            fitted = fit_to_png(data, width=request.width, height=request.height)
        except ValueError as exc:
            raise PaidFailure(request.partition_key, f"prediction {prediction.id} output is {exc}",
                              billed_usd=cost, prediction_id=prediction.id) from None
        if price.size_input == "width_height" and fitted.original_size != (request.width, request.height):
            width, height = fitted.original_size
            raise PaidFailure(
                request.partition_key,
                f"prediction {prediction.id} returned {width}x{height}, expected {request.width}x{request.height}",
                billed_usd=cost, prediction_id=prediction.id,
            )
        return RenderedImage(
            png=fitted.png, model=request.model, cost_usd=cost, prediction_id=prediction.id,
            original=data, original_format=fitted.original_format.lower() or None,
        )

    def close(self) -> None:
        self._downloads.close()

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        """A run killed after Replicate created its prediction but before the journal recorded the id
        leaves a paid prediction nobody knows about. Replicate has no idempotency key, so look for it
        in the account's recent predictions (newest first) by model and exact input, and adopt it
        rather than pay for the same image again. Failed and cancelled ones cannot deliver."""
        wanted = _normalised(self.model_inputs(request, price_for(self._prices, request.model)))
        model = model_name(request.model)
        page = self._call(request, lambda: self._client.predictions.list())
        for _ in range(MAX_LIST_PAGES):
            for prediction in page.results:
                created = _parse_time(prediction.created_at)
                if created is not None and created < created_after:
                    return None
                if prediction.model != model or prediction.status in ("failed", "canceled") or prediction.id in exclude:
                    continue
                inputs = prediction.input
                if inputs is None:  # a listing may leave inputs out; the prediction itself has them
                    inputs = self._call(request, lambda p=prediction: self._client.predictions.get(p.id)).input
                if _normalised(inputs or {}) == wanted:
                    return prediction.id
            if not page.next:
                return None
            cursor = page.next
            page = self._call(request, lambda: self._client.predictions.list(cursor=cursor))
        return None

    def model_inputs(self, request: GenerationRequest, price: ModelPrice) -> dict[str, Any]:
        steps = min(request.steps, price.max_steps) if price.max_steps else request.steps
        inputs: dict[str, Any] = {"prompt": request.prompt, "seed": request.seed, "num_outputs": 1,
                                  "num_inference_steps": steps}
        if price.size_input == "aspect_ratio":
            inputs.update(aspect_ratio=nearest_aspect_ratio(request.width, request.height), output_format="png")
            if price.accepts_guidance:
                inputs["guidance"] = request.guidance
        else:
            inputs.update(width=request.width, height=request.height, guidance_scale=request.guidance)
            if request.negative_prompt:
                inputs["negative_prompt"] = request.negative_prompt
        return inputs

    def _create(self, request: GenerationRequest, price: ModelPrice) -> Any:
        inputs = self.model_inputs(request, price)
        if ":" in request.model:
            version = request.model.split(":", 1)[1]
            return self._call(request, lambda: self._client.predictions.create(version=version, input=inputs))
        owner_and_name = model_name(request.model)
        return self._call(request, lambda: self._client.models.predictions.create(model=owner_and_name, input=inputs))

    def _wait(self, request: GenerationRequest, prediction: Any, session: RenderSession) -> Any:
        started = time.monotonic()
        clock, reported = None, None
        while prediction.status not in FINAL_STATUSES:
            step = step_from_logs(getattr(prediction, "logs", None)) if session.on_progress else None
            if step is not None and step != reported:
                clock = clock or ProgressClock([("processing", step[1])], started_at=started)
                reported = step
                session.on_progress(clock.step("processing", index=step[0] - 1, total=step[1], now=time.monotonic()))
            overdue = time.monotonic() - started > self._max_predict_seconds
            if session.cancelled.is_set() or overdue:
                self._call(request, lambda: self._client.predictions.cancel(prediction.id))
                prediction = self._call(request, lambda: self._client.predictions.get(prediction.id))
                if prediction.status not in FINAL_STATUSES:
                    prediction.status = "canceled"
                why = "run terminated" if session.cancelled.is_set() else f"ran over {self._max_predict_seconds:.0f} s"
                prediction.error = f"cancelled: {why}"
                return prediction
            session.cancelled.wait(self._poll_interval_s)
            prediction = self._call(request, lambda: self._client.predictions.get(prediction.id))
        return prediction

    def _download(self, request: GenerationRequest, prediction_id: str, output: Any) -> bytes:
        if isinstance(output, (list, tuple)):
            output = output[0] if output else None
        try:
            if hasattr(output, "read"):  # replicate.helpers.FileOutput
                return output.read()
            if isinstance(output, str) and output.startswith("data:"):
                return base64.b64decode(output.split(",", 1)[1], validate=False)
            if isinstance(output, str) and output.startswith(("https://", "http://")):
                response = self._downloads.get(output)
                response.raise_for_status()
                return response.content
        except (httpx.HTTPError, ValueError, OSError) as exc:
            raise OutputNotFetched(
                request.partition_key, f"prediction {prediction_id} succeeded but its output could not be "
                f"downloaded ({exc.__class__.__name__}); the next run re-attaches to it"
            ) from None
        raise PaidFailure(request.partition_key, f"prediction {prediction_id} returned no usable output",
                          billed_usd=0.0, prediction_id=prediction_id)

    def _remember_retry_after(self, response: httpx.Response) -> None:
        self._last_retry_after.value = response.headers.get("retry-after")

    def _call(self, request: GenerationRequest, call: Any) -> Any:
        """Run one client call, turning its errors into `ProviderError` with the HTTP status."""
        self._last_retry_after.value = None
        try:
            return call()
        except ReplicateError as exc:
            summary = "; ".join(part for part in (exc.title, exc.detail) if part) or "error"
            reason = explain_http_error(exc.status, summary, url=base_url()) \
                or f"Replicate answered HTTP {exc.status}: {summary[:300]}"
            raise ProviderError(request.partition_key, reason,
                                status=exc.status, retry_after=getattr(self._last_retry_after, "value", None)) from None
        except httpx.HTTPError as exc:
            raise ProviderError(request.partition_key, explain_unreachable(exc.__class__.__name__, url=base_url())) from None


def _normalised(inputs: dict[str, Any]) -> str:
    """Inputs as canonical JSON, so 7 and 7.0 or key order never hide a match."""
    return json.dumps({key: float(value) if isinstance(value, int) and not isinstance(value, bool) else value
                       for key, value in inputs.items()}, sort_keys=True)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
