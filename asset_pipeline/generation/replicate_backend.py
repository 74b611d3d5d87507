"""The hosted Replicate backend, through the official `replicate` client.

Create the prediction without waiting, hand its id to the journal at once, poll it to a final
state (cancelling it when the run is terminated or it runs too long), download the output at once
(Replicate deletes it after an hour; `delivery.py` bounds the fetch) and fit it to the spec's exact
size when the output's size allows it (`output_size.py`). `replicate.run` is not
used: it returns `None` output when the server answers `processing` after its wait.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import replicate
from replicate.exceptions import ReplicateError

from asset_pipeline.errors import (
    CreateOutcomeUnknown,
    GenerationError,
    OutputNotFetched,
    OutputRefused,
    PaidFailure,
    PaidInvalidImage,
    ProviderError,
)
from asset_pipeline.generation.backend import (
    ImageBackend,
    RenderedImage,
    RenderSession,
)
from asset_pipeline.generation.bounded_transport import BoundedTransport, ResponseTooLarge
from asset_pipeline.generation.delivery import Delivery, DeliveryLimits
from asset_pipeline.generation.output_size import max_output_pixels, size_problem
from asset_pipeline.generation.pricing import (
    Bill,
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
from asset_pipeline.imaging.bounded import ABSOLUTE_MAX_PIXELS, read_header
from asset_pipeline.imaging.fit import FittedImage, fit_to_png

DEFAULT_REPLICATE_MODEL = "black-forest-labs/flux-schnell"
MAX_LIST_PAGES = 20  # 2,000 predictions back: far more than one crash can leave behind
FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


def api_answer_limit(limits: DeliveryLimits) -> int:
    """The longest API answer read: room for an inline (base64) output of the largest allowed file."""
    return 2 * limits.max_bytes + 1024 * 1024


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
        delivery: DeliveryLimits | None = None,
        max_output_pixels: int = ABSOLUTE_MAX_PIXELS,
    ):
        check_base_url(base_url())  # a /v1 suffix would send every request to /v1/v1/...
        limits = delivery or DeliveryLimits()
        # The client reads each API answer whole: bound it (an inline data: URI output counts
        # towards it, base64 taking 4/3 of the file's bytes).
        api_transport = BoundedTransport(max_bytes=api_answer_limit(limits), inner=transport)
        extra: dict[str, Any] = {"transport": api_transport}
        # The client's errors carry the RFC 7807 body but not the headers; a response hook keeps
        # each thread's last Retry-After so a 429 can wait exactly as long as Replicate asks.
        self._last_retry_after = threading.local()
        self._client = replicate.Client(api_token=api_token, event_hooks={"response": [self._remember_retry_after]}, **extra)
        # Output files are fetched without the API token: delivery URLs need none, and the token
        # must never travel to another host.
        self._delivery = Delivery(limits, transport=transport)
        self._max_output_pixels = max_output_pixels
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
        started = time.monotonic()
        if session.resume_prediction_id is not None:
            resume_id = session.resume_prediction_id
            prediction = self._call(request, lambda: self._client.predictions.get(resume_id),
                                    what=f"reading prediction {resume_id}")
        else:
            prediction = self._create(request, price)
            session.on_created(prediction.id)
        prediction = self._wait(request, prediction, session)
        bill = self._bill(price, prediction, measured_s=time.monotonic() - started)
        if prediction.status != "succeeded":
            reason = f"prediction {prediction.id} {prediction.status}"
            if prediction.error:
                reason += f": {str(prediction.error)[:300]}"
            raise PaidFailure(request.partition_key, reason, billed_usd=bill.usd, prediction_id=prediction.id,
                              billing_note=bill.note)
        cost = bill.usd
        data = self._fetch_output(request, prediction, bill, session)
        fitted = self._fit(request, price, prediction.id, data, cost)
        return RenderedImage(
            png=fitted.png, model=request.model, cost_usd=cost, prediction_id=prediction.id,
            original=data, original_format=fitted.original_format.lower() or None, billing_note=bill.note,
        )

    def _bill(self, price: ModelPrice, prediction: Any, *, measured_s: float) -> Bill:
        """What the provider billed for `prediction`. Its reported `predict_time` is checked, not
        trusted: garbage (negative, huge, NaN, a string) is replaced by the prediction's own
        started/completed timestamps, else by the time we measured, clamped to our time limit."""
        metrics = prediction.metrics if isinstance(prediction.metrics, dict) else {}
        took = _seconds_between(getattr(prediction, "started_at", None), getattr(prediction, "completed_at", None))
        return billed_usd(price, succeeded=prediction.status == "succeeded", predict_time_s=metrics.get("predict_time"),
                          fallback_s=took if took is not None else measured_s,
                          max_predict_seconds=self._max_predict_seconds)

    def _fetch_output(self, request: GenerationRequest, prediction: Any, bill: Bill, session: RenderSession) -> bytes:
        """The output's bytes. A succeeded prediction was billed whatever its output: every failure
        here carries the prediction id and the bill, so the generator books what was billed."""
        try:
            return self._delivery.fetch(prediction.output, partition_key=request.partition_key,
                                        prediction_id=prediction.id, billed_usd=bill.usd, cancelled=session.cancelled)
        except OutputRefused:
            raise  # refused for good; it carries the prediction and its bill
        except OutputNotFetched as exc:
            raise OutputNotFetched(request.partition_key, exc.reason, prediction_id=prediction.id,
                                   provider_billed_usd=bill.usd) from None
        except GenerationError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the output was, say which prediction and what
            raise OutputNotFetched(
                request.partition_key,
                f"prediction {prediction.id} succeeded but its output ({_describe(prediction.output)}) could not be "
                f"read ({exc.__class__.__name__})",
                prediction_id=prediction.id, provider_billed_usd=bill.usd,
            ) from None

    def billed_for(self, request: GenerationRequest, prediction_id: str) -> float | None:
        prediction = self._call(request, lambda: self._client.predictions.get(prediction_id),
                                what=f"reading prediction {prediction_id}")
        if prediction.status not in FINAL_STATUSES:
            return None
        return self._bill(price_for(self._prices, request.model), prediction, measured_s=math.inf).usd

    def close(self) -> None:
        self._delivery.close()

    def _fit(self, request: GenerationRequest, price: ModelPrice, prediction_id: str, data: bytes,
             cost: float) -> FittedImage:
        """The output fitted to the spec's size; refused (as billed, not retried) when its header
        claims too many pixels or a size too far from the request's, before anything is decoded."""
        def invalid(problem: str) -> PaidInvalidImage:
            return PaidInvalidImage(request.partition_key, f"prediction {prediction_id} {problem}",
                                    billed_usd=cost, prediction_id=prediction_id)

        limit = max_output_pixels(request.width, request.height, price.size_input, cap=self._max_output_pixels)
        try:
            header = read_header(data)
            if header.pixels <= limit:
                problem = size_problem((header.width, header.height), width=request.width, height=request.height,
                                       size_input=price.size_input)
                if problem is not None:
                    raise invalid(problem)
            return fit_to_png(data, width=request.width, height=request.height, max_pixels=limit)  # refuses a bomb
        except ValueError as exc:
            raise invalid(f"output is {exc}") from None

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        """A run killed after Replicate created its prediction but before the journal recorded the id
        leaves a paid prediction nobody knows about. Replicate has no idempotency key, so look for it
        in the account's recent predictions (newest first) by model and exact input, and adopt it
        rather than pay for the same image again. Failed and cancelled ones cannot deliver."""
        wanted = _normalised(self.model_inputs(request, price_for(self._prices, request.model)))
        model = model_name(request.model)
        page = self._call(request, lambda: self._client.predictions.list(), what="listing predictions")
        for _ in range(MAX_LIST_PAGES):
            for prediction in page.results:
                created = _parse_time(prediction.created_at)
                if created is not None and created < created_after:
                    return None
                if prediction.model != model or prediction.status in ("failed", "canceled") or prediction.id in exclude:
                    continue
                inputs = prediction.input
                if inputs is None:  # a listing may leave inputs out; the prediction itself has them
                    inputs = self._call(request, lambda p=prediction: self._client.predictions.get(p.id),
                                        what=f"reading prediction {prediction.id}").input
                if _normalised(inputs or {}) == wanted:
                    return prediction.id
            if not page.next:
                return None
            cursor = page.next
            page = self._call(request, lambda: self._client.predictions.list(cursor=cursor), what="listing predictions")
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
        """Create the prediction. Replicate has no idempotency key, so an answer that was lost or
        cannot be read raises `CreateOutcomeUnknown`: the prediction may exist and be billed. Only a
        readable error answer or a connection that never opened says surely nothing was created."""
        inputs = self.model_inputs(request, price)
        if ":" in request.model:
            version = request.model.split(":", 1)[1]
            call = lambda: self._client.predictions.create(version=version, input=inputs)
        else:
            owner_and_name = model_name(request.model)
            call = lambda: self._client.models.predictions.create(model=owner_and_name, input=inputs)
        self._last_retry_after.value = None
        try:
            prediction = call()
        except ReplicateError as exc:
            if exc.status is not None and exc.status >= 500 and not (exc.title or exc.detail):
                raise _unknown(request, f"answered HTTP {exc.status} with an unreadable body", exc.status) from None
            raise self._provider_error(request, exc) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderError(request.partition_key, explain_unreachable(exc.__class__.__name__, url=base_url())) from None
        except ResponseTooLarge as exc:
            raise _unknown(request, f"answered with more than the allowed size ({exc})") from None
        except httpx.HTTPError as exc:
            raise _unknown(request, f"dropped the connection after the request was sent ({exc.__class__.__name__})") from None
        except Exception as exc:  # noqa: BLE001 - a garbled 2xx body: JSONDecodeError, ValidationError, ...
            raise _unknown(request, f"answered with an unreadable body ({exc.__class__.__name__})") from None
        if not isinstance(getattr(prediction, "id", None), str) or not prediction.id:
            raise _unknown(request, "answered without a prediction id")
        return prediction

    def _wait(self, request: GenerationRequest, prediction: Any, session: RenderSession) -> Any:
        started = time.monotonic()
        clock, reported = None, None
        while prediction.status not in FINAL_STATUSES:
            step = step_from_logs(getattr(prediction, "logs", None)) if session.on_progress else None
            if step is not None and step != reported and session.on_progress is not None:
                clock = clock or ProgressClock([("processing", step[1])], started_at=started)
                reported = step
                session.on_progress(clock.step("processing", index=step[0] - 1, total=step[1], now=time.monotonic()))
            overdue = time.monotonic() - started > self._max_predict_seconds
            if session.cancelled.is_set() or overdue:
                self._call(request, lambda: self._client.predictions.cancel(prediction.id),
                           what=f"cancelling prediction {prediction.id}")
                prediction = self._call(request, lambda: self._client.predictions.get(prediction.id),
                                        what=f"reading prediction {prediction.id}")
                if prediction.status not in FINAL_STATUSES:
                    prediction.status = "canceled"
                why = "run terminated" if session.cancelled.is_set() else f"ran over {self._max_predict_seconds:.0f} s"
                prediction.error = f"cancelled: {why}"
                return prediction
            session.cancelled.wait(self._poll_interval_s)
            prediction = self._call(request, lambda: self._client.predictions.get(prediction.id),
                                    what=f"polling prediction {prediction.id}")
        return prediction

    def _remember_retry_after(self, response: httpx.Response) -> None:
        self._last_retry_after.value = response.headers.get("retry-after")

    def _call(self, request: GenerationRequest, call: Any, *, what: str = "") -> Any:
        """Run one client call, turning its errors into `ProviderError` with the HTTP status; `what`
        names the call (and its prediction) in the message."""
        self._last_retry_after.value = None
        doing = f" {what}" if what else ""
        try:
            return call()
        except ReplicateError as exc:
            raise self._provider_error(request, exc, what=what) from None
        except ResponseTooLarge as exc:
            raise ProviderError(request.partition_key, f"Replicate sent an answer too large to read ({exc}{', while ' + what if what else ''})") from None
        except httpx.HTTPError as exc:
            raise ProviderError(request.partition_key,
                                explain_unreachable(exc.__class__.__name__, url=base_url())
                                + (f" (while {what})" if what else "")) from None
        except Exception as exc:  # noqa: BLE001 - garbled answers: JSONDecodeError, ValidationError, ...
            raise ProviderError(request.partition_key,
                                f"Replicate sent an unreadable answer{doing} ({exc.__class__.__name__})") from None

    def _provider_error(self, request: GenerationRequest, exc: ReplicateError, *, what: str = "") -> ProviderError:
        summary = "; ".join(part for part in (exc.title, exc.detail) if part) or "error"
        doing = f" {what}" if what else ""
        reason = explain_http_error(exc.status, summary, url=base_url()) \
            or f"Replicate answered HTTP {exc.status}{doing}: {summary[:300]}"
        return ProviderError(request.partition_key, reason,
                             status=exc.status, retry_after=getattr(self._last_retry_after, "value", None))


def _unknown(request: GenerationRequest, what: str, status: int | None = None) -> CreateOutcomeUnknown:
    return CreateOutcomeUnknown(
        request.partition_key,
        f"Replicate {what} when asked to create a prediction: it may exist and be billed, so its reservation "
        "stays open and the provider is searched for it before any new create",
        status=status,
    )


def _describe(output: Any) -> str:
    """A short, safe description of a provider output for error messages."""
    if isinstance(output, (list, tuple)):
        return f"output list of {len(output)}" + (f", first {_describe(output[0])}" if output else "")
    if isinstance(output, str):
        return f"output {output[:60]!r}" + ("..." if len(output) > 60 else "")
    return f"output {type(output).__name__}"


def _seconds_between(started: Any, completed: Any) -> float | None:
    begin, end = _parse_time(started), _parse_time(completed)
    if begin is None or end is None:
        return None
    return (end - begin).total_seconds()


def _normalised(inputs: dict[str, Any]) -> str:
    """Inputs as canonical JSON, so 7 and 7.0 or key order never hide a match."""
    return json.dumps({key: float(value) if isinstance(value, int) and not isinstance(value, bool) else value
                       for key, value in inputs.items()}, sort_keys=True)


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
