"""The generator resource: one budget-metered entry point in front of the configured backend.

For a paid backend every image goes through the same steps:

1. re-attach to a journaled prediction for the same request hash if one may still deliver, else
   reserve the estimated cost atomically against the caps (raising `BudgetExhaustedError`);
2. render; a new prediction's id is journaled the moment the provider returns it;
3. check the bytes decode as a PNG of the requested size (never charged as a success otherwise);
4. the caller stores the image and only then calls `settle`, which charges the actual cost.

A failure releases the reservation, or charges what the provider billed; a prediction whose fate
is unknown keeps its reservation open so the next run can re-attach instead of paying again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn

import dagster as dg
from pydantic import Field, PrivateAttr

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    ConfigurationError,
    CreateOutcomeUnknown,
    GenerationError,
    InvalidImageError,
    OutputNotFetched,
    OutputRefused,
    RequestInFlightError,
    RetriesExhausted,
)
from asset_pipeline.generation.backend import ImageBackend, PaidFailure, RenderedImage, RenderSession
from asset_pipeline.generation.delivery import DeliveryLimits
from asset_pipeline.generation.delivery_hosts import delivery_hosts
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.generation.failures import PROVIDER_FAILURES, Strategy
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.pricing import DEFAULT_PRICES, ModelPrice
from asset_pipeline.generation.progress import ProgressCallback
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.generation.retries import (
    AttemptRecord,
    RetryNotice,
    classify_error,
    next_request,
    summarize_attempts,
    wait_before_retry,
)
from asset_pipeline.imaging.bounded import read_header
from asset_pipeline.imaging.inspect import inspect_image
from asset_pipeline.ledger.attempts import AttemptLog
from asset_pipeline.ledger.budget_ledger import BudgetExhausted, BudgetLedger, RequestInFlight, Reservation
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker, CircuitOpen
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import MAX_FETCH_TRIES, PredictionJournal
from asset_pipeline.ledger.money import MAX_BUDGET_USD, BudgetCaps, is_finite_number
from asset_pipeline.resources.run_config_guard import configuration_failure, enforce_operator_config
from asset_pipeline.settings import from_settings

# How long another run's open reservation counts as "being generated right now". Once its
# prediction is journaled (within a second of the reservation), a second run adopts that
# prediction instead of waiting; so this only has to cover reserve -> create -> journal, and a
# reservation left behind by a killed run blocks nobody for longer than this.
IN_FLIGHT_WINDOW_S = 60.0
# How far the provider's clock may be behind ours when matching its predictions to a reservation.
PROVIDER_CLOCK_SKEW = timedelta(minutes=5)
CIRCUIT_POLL_S = 0.5  # how often a request waiting on an open circuit looks again

# What run config may not change (the operator's environment decides), and the caps it may only lower.
FIXED_FIELDS = {
    "backend": "ASSET_PIPELINE_BACKEND",
    "database_url": "ASSET_PIPELINE_DATABASE_URL",
    "replicate_api_token": "REPLICATE_API_TOKEN",
    "prices": "the price table in definitions",
    "diffusers.gpu_hour_usd": "ASSET_PIPELINE_GPU_HOUR_USD",
    "delivery_hosts": "ASSET_PIPELINE_DELIVERY_HOSTS",
}
CAP_FIELDS = {
    "budget_total_usd": "ASSET_PIPELINE_BUDGET_TOTAL_USD",
    "budget_daily_usd": "ASSET_PIPELINE_BUDGET_DAILY_USD",
    "budget_per_run_usd": "ASSET_PIPELINE_BUDGET_PER_RUN_USD",
    "max_retry_spend_usd": "max_retry_spend_usd in definitions",
    "max_download_mb": "ASSET_PIPELINE_MAX_DOWNLOAD_MB",
    "download_timeout_s": "ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S",
    "max_output_megapixels": "ASSET_PIPELINE_MAX_OUTPUT_MEGAPIXELS",
}


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class PendingImage:
    """A rendered image whose cost is reserved but not yet charged (charged by `settle`).

    `request` is what finally produced it; `requested` what the catalog asked for, which differs
    after a fallback model or a simplified prompt (the store indexes the image under both).
    """

    request: GenerationRequest
    rendered: RenderedImage
    reservation: Reservation | None
    attempts: int = 1
    strategies: tuple[str, ...] = ()
    requested: GenerationRequest | None = None


class ImageGenerator(dg.ConfigurableResource):
    """Generates images through one backend; shared by every partition of a run."""

    # Every default comes from the operator's settings (`from_settings`) or a factory, never a plain
    # class default: Dagster then leaves unset fields out of a partial run config, so they keep the
    # operator's values. Which fields run config may change at all: FIXED_FIELDS, CAP_FIELDS below.
    backend: Literal["placeholder", "replicate", "diffusers"] = Field(
        default_factory=from_settings("backend"), description="Backend that renders images (ASSET_PIPELINE_BACKEND)."
    )
    model: str | None = Field(
        default_factory=from_settings("model"),
        description="Model reference; None uses the backend's default (ASSET_PIPELINE_MODEL).",
    )
    fallback_models: list[str] = Field(
        default_factory=from_settings("fallback_models", _comma_list),
        description="Ordered models to fall back to when the model is unavailable (ASSET_PIPELINE_FALLBACK_MODELS).",
    )
    max_concurrency: int = Field(
        default_factory=from_settings("max_concurrency"), ge=1, le=256,
        description="Images generated at once in one run (ASSET_PIPELINE_MAX_CONCURRENCY).",
    )
    database_url: str = Field(
        default_factory=from_settings("ledger_url"),
        description="Ledger database, a SQLAlchemy URL (ASSET_PIPELINE_DATABASE_URL); fixed by the operator.",
    )
    budget_total_usd: float = Field(default_factory=from_settings("budget_total_usd"), ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="Cap on all spending (ASSET_PIPELINE_BUDGET_TOTAL_USD); run config may only lower it.")
    budget_daily_usd: float = Field(default_factory=from_settings("budget_daily_usd"), ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="Cap per UTC day (ASSET_PIPELINE_BUDGET_DAILY_USD); run config may only lower it.")
    budget_per_run_usd: float = Field(default_factory=from_settings("budget_per_run_usd"), ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="Cap per run (ASSET_PIPELINE_BUDGET_PER_RUN_USD); run config may only lower it.")
    prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES), description="Price table; fixed by the operator."
    )
    max_predict_seconds: float = Field(
        default_factory=lambda: 300.0, gt=0,
        description="A prediction running longer is cancelled; time-billed models reserve this long.",
    )
    poll_interval_s: float = Field(
        default_factory=from_settings("poll_interval_s"), gt=0, description="How often a running prediction is polled."
    )
    diffusers: DiffusersOptions = Field(
        default_factory=DiffusersOptions, description="Local SDXL pipeline settings (ASSET_PIPELINE_DIFFUSERS_*)."
    )
    replicate_api_token: str | None = Field(
        default_factory=lambda: None,
        description="Replicate API token; bind with dg.EnvVar('REPLICATE_API_TOKEN'); fixed by the operator.",
    )
    fallback_images: bool = Field(
        default_factory=from_settings("fallback_images"),
        description="Store a generic per-category image when every strategy fails (ASSET_PIPELINE_FALLBACK_IMAGES).",
    )
    fallback_image_dir: str | None = Field(
        default_factory=from_settings("fallback_image_dir", lambda path: str(path) if path else None),
        description="Folder of `<category>.png` fallback images; unset renders a labelled card.",
    )
    max_attempts: int = Field(
        default_factory=from_settings("max_attempts"), ge=1, le=20,
        description="Attempts per image, all strategies together (ASSET_PIPELINE_MAX_ATTEMPTS).",
    )
    max_retry_spend_usd: float = Field(
        default_factory=lambda: 0.10, ge=0,
        description="Stop retrying an image once its failed attempts were billed this much; run config may only lower it.",
    )
    backoff_base_s: float = Field(
        default_factory=from_settings("backoff_base_s"), ge=0, description="First backoff ceiling for transient errors."
    )
    backoff_cap_s: float = Field(default_factory=lambda: 30.0, ge=0, description="Longest backoff between attempts.")
    max_wait_s: float = Field(default_factory=lambda: 120.0, ge=0, description="Longest wait a rate limit may impose before a retry.")
    requests_per_second: float = Field(
        default_factory=from_settings("requests_per_second"), gt=0, description="New predictions per second from one run."
    )
    delivery_hosts: str | None = Field(
        default_factory=from_settings("delivery_hosts"),
        description="Comma-separated hosts output files may be fetched from (`host`, `host:port`, `*.domain`); None: "
        "replicate.delivery, *.replicate.delivery and REPLICATE_BASE_URL's host (ASSET_PIPELINE_DELIVERY_HOSTS); "
        "fixed by the operator.",
    )
    max_download_mb: float = Field(default_factory=from_settings("max_download_mb"), gt=0, le=1024, allow_inf_nan=False,
                                   description="Largest output file downloaded (ASSET_PIPELINE_MAX_DOWNLOAD_MB).")
    download_timeout_s: float = Field(default_factory=from_settings("download_timeout_s"), gt=0, le=3600,
                                      allow_inf_nan=False,
                                      description="Deadline for one output download (ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S).")
    max_output_megapixels: float = Field(
        default_factory=from_settings("max_output_megapixels"), gt=0, le=40, allow_inf_nan=False,
        description="Absolute cap on an output's pixels, checked before decoding; each image is also held to "
        "4x the pixels it asked for (ASSET_PIPELINE_MAX_OUTPUT_MEGAPIXELS).",
    )
    breaker_failure_rate: float = Field(default_factory=lambda: 0.5, gt=0, le=1, description="Share of failed provider calls in the window that opens the circuit.")
    breaker_window_calls: int = Field(default_factory=lambda: 50, ge=1, description="The breaker's sliding window: this many most recent calls.")
    breaker_minimum_calls: int = Field(default_factory=from_settings("breaker_minimum_calls"), ge=1, description="Calls the window must hold before the failure rate counts (ASSET_PIPELINE_BREAKER_MINIMUM_CALLS).")
    breaker_window_s: float = Field(default_factory=lambda: 60.0, gt=0, description="Calls older than this fall out of the breaker's window.")
    breaker_cooldown_s: float = Field(default_factory=from_settings("breaker_cooldown_s"), gt=0, description="How long an open circuit stays open (ASSET_PIPELINE_BREAKER_COOLDOWN_S).")
    breaker_half_open_calls: int = Field(default_factory=lambda: 3, ge=1, description="Trial requests let through when half-open; a majority of successes closes it.")
    max_outage_s: float = Field(default_factory=from_settings("max_outage_s"), ge=0, description="Longest provider outage a run waits out before failing its partitions (ASSET_PIPELINE_MAX_OUTAGE_S).")

    _backend: ImageBackend | None = PrivateAttr(default=None)
    _ledger: BudgetLedger | None = PrivateAttr(default=None)
    _bucket: TokenBucket | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        enforce_operator_config(self, context, label="image_generator", fixed=FIXED_FIELDS, ceilings=CAP_FIELDS)
        try:
            backend = self.active_backend
            backend.check_models([self.model or backend.default_model, *self.fallback_models])
        except ConfigurationError as exc:
            raise configuration_failure(exc) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def build_backend(self) -> ImageBackend:
        """The backend named by `backend`. Subclasses may return another `ImageBackend`."""
        if self.backend == "placeholder":
            return PlaceholderBackend()
        if self.backend == "replicate":
            # Imported here so definitions load without the replicate client unless it is used.
            from asset_pipeline.generation.replicate_backend import ReplicateBackend

            return ReplicateBackend(
                api_token=self.replicate_api_token,
                prices=self.prices,
                max_predict_seconds=self.max_predict_seconds,
                poll_interval_s=self.poll_interval_s,
                delivery=self.delivery_limits(),
                max_output_pixels=int(self.max_output_megapixels * 1_000_000),
            )
        if self.backend == "diffusers":
            # Imported here so definitions load without torch unless the local backend is used.
            from asset_pipeline.generation.diffusers_backend import DiffusersBackend

            return DiffusersBackend(self.diffusers)
        raise ConfigurationError("ASSET_PIPELINE_BACKEND", f"unknown backend '{self.backend}'")

    def delivery_limits(self) -> DeliveryLimits:
        """Bounds on fetching output files; the default hosts include REPLICATE_BASE_URL's, which the
        official client reads from the environment too."""
        hosts = delivery_hosts(self.delivery_hosts, provider_base_url=os.environ.get("REPLICATE_BASE_URL"))
        return DeliveryLimits(hosts=hosts, max_bytes=int(self.max_download_mb * 1024 * 1024),
                              timeout_s=self.download_timeout_s)

    @property
    def active_backend(self) -> ImageBackend:
        with self._lock:
            if self._backend is None:
                self._backend = self.build_backend()
            return self._backend

    @property
    def caps(self) -> BudgetCaps:
        return BudgetCaps(self.budget_total_usd, self.budget_daily_usd, self.budget_per_run_usd)

    @property
    def ledger(self) -> BudgetLedger:
        """The budget ledger, opened (and its tables created) on first use."""
        with self._lock:
            if self._ledger is None:
                self._ledger = BudgetLedger(ledger_engine(self.database_url))
            return self._ledger

    @property
    def journal(self) -> PredictionJournal:
        return PredictionJournal(self.ledger.engine)

    def request_for(self, spec: ImageSpec) -> GenerationRequest:
        backend = self.active_backend
        return build_request(spec, backend=backend.name, model=self.model or backend.default_model)

    def generate(
        self, request: GenerationRequest, *, run_id: str = "", cancelled: threading.Event | None = None,
        on_progress: ProgressCallback | None = None, dead_runs: frozenset[str] = frozenset(),
        is_alive: Callable[[str], bool] | None = None, on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> PendingImage:
        """Render `request` within budget, retrying as each failure's class calls for.

        `on_progress` receives the backend's progress reports (every denoising step for diffusers)
        and must not block; `on_retry` hears of every failed attempt (for the run log). `dead_runs`
        are runs known to have ended: their open reservations do not make the request count as in
        flight elsewhere.

        While the provider's circuit is open the request waits, up to `max_outage_s` from the start
        of the outage. Raises `BudgetExhaustedError` at once, `CircuitOpenError` ("provider
        unavailable since ...") when the outage outlasts that, `RetriesExhausted` when no strategy
        is left, each with a reason that is safe to log.
        """
        cancelled = cancelled or threading.Event()
        if not self.active_backend.is_paid:
            return self._attempt(request, run_id, cancelled, on_progress, dead_runs, is_alive)
        history: list[AttemptRecord] = []
        current, billed_for_failures = request, 0.0
        counted = 0  # attempts counted against `max_attempts`; a failed breaker trial is the breaker's probe
        while True:
            trial = self._may_send(request, cancelled, history)
            if not self.bucket.acquire(cancelled):
                raise GenerationError(request.partition_key, "run terminated before the request was sent")
            number = len(history) + 1
            try:
                pending = self._attempt(current, run_id, cancelled, on_progress, dead_runs, is_alive)
            except GenerationError as exc:
                classified = classify_error(exc, history)
                provider_failure = classified.failure in PROVIDER_FAILURES
                if not cancelled.is_set():  # our own cancellation says nothing about the provider
                    self.circuit.record(ok=not provider_failure, trial=trial)
                if not (trial and provider_failure):
                    counted += 1
                billed_for_failures += getattr(exc, "billed_usd", 0.0)
                follow_up = next_request(current, classified, history, self.fallback_models)
                over_spend = billed_for_failures >= self.max_retry_spend_usd > 0
                give_up = follow_up is None or counted >= self.max_attempts or over_spend or cancelled.is_set()
                strategy = Strategy.FAIL if give_up else classified.strategy
                wait = 0.0 if give_up else wait_before_retry(classified, counted, self)
                history.append(AttemptRecord(number, current.model, classified.failure, strategy, exc.reason))
                self.attempt_log.record(
                    run_id=run_id, partition_key=current.partition_key, request_hash=current.request_hash,
                    model=current.model, attempt=number, failure_class=classified.failure,
                    strategy=strategy, detail=exc.reason,
                )
                if isinstance(exc, (BudgetExhaustedError, RequestInFlightError)):
                    raise
                if on_retry is not None and not cancelled.is_set():
                    on_retry(RetryNotice(request.partition_key, number, classified.failure, strategy, exc.reason,
                                         wait_s=None if give_up else wait))
                if give_up:
                    raise RetriesExhausted(request.partition_key, _summary(exc, history, over_spend),
                                           attempts=history, last=exc) from None
                if cancelled.wait(wait):
                    raise GenerationError(request.partition_key, "run terminated while waiting to retry") from None
                current = follow_up
                continue
            self.circuit.record(ok=True, trial=trial)
            return replace(pending, attempts=number, strategies=tuple(a.strategy for a in history), requested=request)

    def _may_send(self, request: GenerationRequest, cancelled: threading.Event,
                  history: list[AttemptRecord] | None = None) -> bool:
        """True if this request is one of the breaker's trials.

        While the circuit is open the request waits for it (for its cool-down and the trials'
        verdict) instead of failing: a batch run would otherwise lose every partition that meets an
        outage. Only once the outage has lasted `max_outage_s` does it fail, naming when the outage
        began and the provider's last error.
        """
        circuit = self.circuit
        while True:
            try:
                return circuit.before_request()
            except CircuitOpen as exc:
                down_for = (datetime.now(UTC) - exc.since).total_seconds()
                # Past the longest outage, still wait for trials already out: their verdict may
                # close the circuit (a new run after a long outage must not fail beside its trials).
                if down_for >= self.max_outage_s and not circuit.trial_in_flight():
                    raise CircuitOpenError(request.partition_key,
                                           _unavailable(exc.since, history or [], circuit)) from None
                pause = min(CIRCUIT_POLL_S, max(0.05, self.max_outage_s - down_for))
            if cancelled.wait(pause):
                raise GenerationError(request.partition_key, "run terminated while waiting for the provider to come back")

    @property
    def bucket(self) -> TokenBucket:
        with self._lock:
            if self._bucket is None:
                self._bucket = TokenBucket(rate=self.requests_per_second, burst=max(1, int(self.requests_per_second)))
            return self._bucket

    @property
    def circuit(self) -> CircuitBreaker:
        config = BreakerConfig(
            failure_rate=self.breaker_failure_rate, window_calls=self.breaker_window_calls,
            minimum_calls=self.breaker_minimum_calls, window_s=self.breaker_window_s,
            cooldown_s=self.breaker_cooldown_s, half_open_calls=self.breaker_half_open_calls,
        )
        return CircuitBreaker(self.ledger.engine, provider=self.active_backend.name, config=config)

    @property
    def attempt_log(self) -> AttemptLog:
        return AttemptLog(self.ledger.engine)

    def _attempt(self, request: GenerationRequest, run_id: str, cancelled: threading.Event,
                 on_progress: ProgressCallback | None = None, dead_runs: frozenset[str] = frozenset(),
                 is_alive: Callable[[str], bool] | None = None) -> PendingImage:
        """One try: reserve (or re-attach), render, verify. Closes the reservation on failure."""
        backend = self.active_backend
        session = RenderSession(cancelled=cancelled, on_progress=on_progress)
        reservation = self._reserve(request, run_id, session, dead_runs, is_alive) if backend.is_paid else None
        created: list[str] = []

        def on_created(prediction_id: str) -> None:
            created.append(prediction_id)
            if reservation is not None:
                self.journal.record(reservation, prediction_id=prediction_id, status="created")

        session.on_created = on_created
        try:
            rendered = backend.render(request, session)
        except OutputRefused as refused:  # refused for good: book the bill, never re-attach to it
            self._close_failed(reservation, PaidFailure(request.partition_key, refused.reason,
                                                        billed_usd=refused.billed_usd, prediction_id=refused.prediction_id))
            raise
        except PaidFailure as failure:
            self._close_failed(reservation, failure)
            raise
        except BaseException as exc:
            if reservation is None:
                raise
            prediction_id = session.resume_prediction_id or (created[0] if created else None)
            if prediction_id is None:
                if isinstance(exc, CreateOutcomeUnknown):
                    raise  # the reservation stays open: the next attempt searches the provider first
                self.ledger.release(reservation, reason=f"released: {_reason(exc)}")
            elif isinstance(exc, OutputNotFetched) and not cancelled.is_set():  # a terminated run is no try
                self._output_not_fetched(request, reservation, prediction_id, exc)
            elif isinstance(exc, GenerationError):
                raise GenerationError(
                    request.partition_key,
                    f"{exc.reason}; prediction {prediction_id} keeps its reservation and the next run re-attaches",
                ) from None
            raise
        if reservation is not None and rendered.prediction_id:
            self.journal.record(reservation, prediction_id=rendered.prediction_id, status="succeeded")
        self._verify(request, rendered, reservation)
        return PendingImage(request, rendered, reservation)

    def settle(self, pending: PendingImage, *, sha256: str | None, problem: str | None = None) -> None:
        """Charge what the image cost: after it is stored (`sha256`), or with `problem` if storing failed."""
        reservation = pending.reservation
        if reservation is None:
            return
        rendered = pending.rendered
        reason = "charged after the image was stored" if problem is None else f"billed, but not stored: {problem}"
        if rendered.billing_note:
            reason += f"; {rendered.billing_note}"
        self.ledger.charge(reservation, amount_usd=rendered.cost_usd, prediction_id=rendered.prediction_id, reason=reason)
        if rendered.prediction_id:
            self.journal.record(reservation, prediction_id=rendered.prediction_id, status="stored" if sha256 else "lost")
        if sha256 is not None:
            self.ledger.record_paid_request(reservation, sha256=sha256, cost_usd=rendered.cost_usd)

    def wait_until_not_in_flight(self, request: GenerationRequest, *, run_id: str, cancelled: threading.Event,
                                 is_alive: Callable[[str], bool], dead_runs: set[str]) -> None:
        """Wait while a live run holds an open reservation for `request` (it will store the image).

        Holders found dead (`is_alive` false: killed, failed, cancelled) are added to `dead_runs`.
        """
        while True:
            holder = self.ledger.in_flight_elsewhere(request.request_hash, run_id=run_id,
                                                     within_s=IN_FLIGHT_WINDOW_S,
                                                     dead_runs=frozenset(dead_runs))
            if holder is None:
                return
            if not is_alive(holder):
                dead_runs.add(holder)
                continue
            if cancelled.wait(self.poll_interval_s):
                raise GenerationError(request.partition_key, "run terminated while another run made this image")

    def settle_cache_hit(self, request_hash: str, *, cost_usd: float) -> None:
        """Charge reservations left open by a run that stored this image but died before charging it."""
        for reservation in self.ledger.open_reservations_for(request_hash):
            if self.journal.latest_status(reservation.reservation_id) != "succeeded":
                continue  # still being generated elsewhere, or its fate is unknown: leave it open
            reason = "charged on a later run: the image was stored before the earlier run died"
            amount = cost_usd
            if not is_finite_number(cost_usd) or cost_usd < 0:
                # An older version could store NaN here; the reservation is what it cost at most.
                amount = reservation.amount_usd
                reason += f"; the stored cost {cost_usd!r} is not a usable amount, so the reservation is charged"
            self.ledger.charge(reservation, amount_usd=amount, prediction_id=None, reason=reason)

    def _reserve(self, request: GenerationRequest, run_id: str, session: RenderSession,
                 dead_runs: frozenset[str] = frozenset(), is_alive: Callable[[str], bool] | None = None) -> Reservation:
        journaled = self.journal.resumable(request.request_hash)
        if journaled is not None:
            adopted = self.ledger.open_reservation(journaled.reservation_id)
            if adopted is not None:
                session.resume_prediction_id = journaled.prediction_id
                return adopted
        orphan = self._adopt_unjournaled(request, run_id, session, dead_runs, is_alive)
        if orphan is not None:
            return orphan
        self._close_expired(request)
        try:
            return self.ledger.reserve(
                run_id=run_id, partition_key=request.partition_key, request_hash=request.request_hash,
                model=request.model, amount_usd=self.active_backend.reservation_usd(request.model), caps=self.caps,
                in_flight_for_s=IN_FLIGHT_WINDOW_S, dead_runs=dead_runs,
            )
        except BudgetExhausted as exc:
            raise BudgetExhaustedError(request.partition_key, str(exc), cap=exc.violation.cap) from None
        except RequestInFlight as exc:
            raise RequestInFlightError(request.partition_key, str(exc), run_id=exc.run_id) from None

    def _adopt_unjournaled(self, request: GenerationRequest, run_id: str, session: RenderSession,
                           dead_runs: frozenset[str], is_alive: Callable[[str], bool] | None) -> Reservation | None:
        """Another run's open reservation with no journaled prediction, older than the in-flight
        window or held by a run known to be dead: that run died between reserving and journaling,
        perhaps after the provider created (and will bill) a prediction. Ask the provider; carry on
        with that prediction if it exists, else release the dead run's reservation."""
        for reservation, reserved_at in self.ledger.unjournaled_reservations(
            request.request_hash, run_id=run_id, older_than_s=IN_FLIGHT_WINDOW_S, dead_runs=dead_runs, own_run_too=True
        ):
            # This run's own open, unjournaled reservation: an earlier attempt's create answer was
            # lost (CreateOutcomeUnknown). Its prediction may exist: search before creating again.
            own = reservation.run_id == run_id
            prediction_id = self.active_backend.find_prediction(
                request, created_after=reserved_at - PROVIDER_CLOCK_SKEW,
                exclude=self.journal.prediction_ids(request.request_hash),  # each is paid for by one reservation
            )
            if prediction_id is not None:
                why = "after the answer to its create was lost" if own else "after its run died"
                self.journal.record(reservation, prediction_id=prediction_id, status="created",
                                    detail=f"found at the provider by run {run_id} {why}")
                session.resume_prediction_id = prediction_id
                return reservation
            if own:
                self.ledger.release(reservation, reason="released: the answer to its create was lost, and the "
                                    "provider has no such prediction")
                continue
            dead = reservation.run_id in dead_runs or (is_alive is not None and not is_alive(reservation.run_id))
            if dead:
                self.ledger.release(reservation, reason="released: its run ended before the provider created anything")
        return None

    def _close_expired(self, request: GenerationRequest) -> None:
        """Journaled predictions too old to re-attach to (the provider deleted their output) would
        keep their reservations open for ever: charge what the provider billed for each, once it
        says so, and journal them `expired`."""
        for journaled in self.journal.expired(request.request_hash):
            reservation = self.ledger.open_reservation(journaled.reservation_id)
            if reservation is None:
                continue
            try:
                billed = self.active_backend.billed_for(request, journaled.prediction_id)
            except GenerationError:
                billed = None  # the provider cannot say now: never let that block a new image
            if billed is None:
                continue  # not finished yet, or nothing the provider can tell: look again next time
            self.ledger.charge(reservation, amount_usd=billed, prediction_id=journaled.prediction_id,
                               reason=f"billed by the provider; prediction {journaled.prediction_id}'s output expired "
                               "before it was stored")
            self.journal.record(reservation, prediction_id=journaled.prediction_id, status="expired")

    def _output_not_fetched(self, request: GenerationRequest, reservation: Reservation, prediction_id: str,
                            exc: OutputNotFetched) -> NoReturn:
        """A paid output could not be downloaded. Re-attach to it on later attempts, at most
        MAX_FETCH_TRIES times in all (runs together); then book what the provider billed, mark the
        prediction `unfetchable` (never re-attached again) and fail the image: the next run creates a
        new prediction. Raises in every case."""
        self.journal.record(reservation, prediction_id=prediction_id, status="fetch_failed", detail=exc.reason[:500])
        tries = self.journal.count(prediction_id, "fetch_failed")
        if tries < MAX_FETCH_TRIES:
            raise OutputNotFetched(
                request.partition_key,
                f"{exc.reason} (try {tries} of {MAX_FETCH_TRIES}); prediction {prediction_id} keeps its reservation "
                "and is re-attached", prediction_id=prediction_id, provider_billed_usd=exc.provider_billed_usd,
            ) from None
        billed, note = exc.provider_billed_usd, ""
        if billed is None:
            billed, note = reservation.amount_usd, "; the provider's bill is not known, so the reservation is charged"
        reason = f"prediction {prediction_id}'s output could not be fetched in {tries} tries ({exc.reason})"
        self.ledger.charge(reservation, amount_usd=billed, prediction_id=prediction_id,
                           reason=f"billed by the provider, output never delivered: {reason}{note}")
        self.journal.record(reservation, prediction_id=prediction_id, status="unfetchable", detail=reason[:500])
        raise PaidFailure(request.partition_key, f"{reason}; charged what the provider billed, the next run creates "
                          "a new prediction", billed_usd=billed, prediction_id=prediction_id, final=True) from None

    def _close_failed(self, reservation: Reservation | None, failure: PaidFailure) -> None:
        if reservation is None:
            return
        if failure.billed_usd > 0:
            note = f"; {failure.billing_note}" if failure.billing_note else ""
            self.ledger.charge(reservation, amount_usd=failure.billed_usd, prediction_id=failure.prediction_id,
                               reason=f"billed by the provider for a failed image: {failure.reason}{note}")
        else:
            self.ledger.release(reservation, prediction_id=failure.prediction_id, reason=f"released: {failure.reason}")
        if failure.prediction_id:
            self.journal.record(reservation, prediction_id=failure.prediction_id, status="failed",
                                detail=failure.reason[:500])

    def _verify(self, request: GenerationRequest, rendered: RenderedImage, reservation: Reservation | None) -> None:
        """Refuse bytes that are not a PNG of the requested size; the provider's bill is still recorded.

        The header is read first: bytes claiming another size are refused without being decoded."""
        try:
            header = read_header(rendered.png)
            problem = None
            if header.format != "PNG" or (header.width, header.height) != (request.width, request.height):
                problem = (f"backend returned a {header.format} of {header.width}x{header.height}, "
                           f"expected a PNG of {request.width}x{request.height}")
            else:
                inspect_image(rendered.png, max_pixels=header.pixels)
        except ValueError as exc:
            problem = f"backend returned {exc}"
        if problem is None:
            return
        self._close_failed(
            reservation,
            PaidFailure(request.partition_key, problem, billed_usd=rendered.cost_usd, prediction_id=rendered.prediction_id),
        )
        raise InvalidImageError(request.partition_key, problem)


def _summary(last: GenerationError, history: list[AttemptRecord], over_spend: bool) -> str:
    limit = "; retry spend limit reached" if over_spend else ""
    return f"{last.reason} ({summarize_attempts(history)}{limit})"


def _unavailable(since: datetime, history: list[AttemptRecord], circuit: CircuitBreaker) -> str:
    """Why a request gave up on an open circuit: since when, the provider's last error, what was tried."""
    last = history[-1].detail if history else circuit.last_provider_error() or "no provider error was recorded"
    tried = f" ({summarize_attempts(history)})" if history else "; no request was sent for this image"
    return f"provider unavailable since {since:%Y-%m-%d %H:%M:%S} UTC: {last}{tried}"


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, GenerationError) else exc.__class__.__name__
