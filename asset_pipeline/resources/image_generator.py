"""The generator resource: run config -> a `MeteredGenerator` (generation/metered.py) over the
configured backend, built on first use and closed in teardown. The money path lives in the core;
this resource only chooses the backend, guards the operator's settings and wires the ledger.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import (
    ConfigurationError,
)
from asset_pipeline.generation.backend import ImageBackend
from asset_pipeline.generation.delivery import DeliveryLimits
from asset_pipeline.generation.delivery_hosts import delivery_hosts
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.generation.metered import MeteredGenerator, MeteringPolicy, PendingImage
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.pricing import DEFAULT_PRICES, ModelPrice
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.ledger.attempts import AttemptLog
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import MAX_BUDGET_USD, BudgetCaps
from asset_pipeline.resources import provider_limits
from asset_pipeline.resources.run_config_guard import configuration_failure, enforce_operator_config
from asset_pipeline.settings import from_settings

# What run config may not change (the operator's environment decides), and the caps it may only lower.
FIXED_FIELDS = {
    "backend": "ASSET_PIPELINE_BACKEND",
    "database_url": "ASSET_PIPELINE_DATABASE_URL",
    "replicate_api_token": "REPLICATE_API_TOKEN",
    "prices": "the price table in definitions",
    "diffusers.gpu_hour_usd": "ASSET_PIPELINE_GPU_HOUR_USD",
    "delivery_hosts": "ASSET_PIPELINE_DELIVERY_HOSTS",
    "redis_url": "ASSET_PIPELINE_REDIS_URL",  # issue 16
    "provider_limits": "ASSET_PIPELINE_PROVIDER_LIMITS",  # issue 16
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

    # --- issue 16: provider limits shared by every run (resources/provider_limits.py) ---------------
    redis_url: str | None = Field(default_factory=from_settings("redis_url"),
                                  description="Redis for the shared provider limits (ASSET_PIPELINE_REDIS_URL); unset: "
                                  "the ledger database; fixed by the operator.")
    provider_limits: Literal["deployment", "run"] = Field(
        default_factory=from_settings("provider_limits"),
        description="`deployment`: one create rate and in-flight limit for every run (ASSET_PIPELINE_PROVIDER_LIMITS).")
    provider_max_concurrency: int = Field(
        default_factory=from_settings("provider_max_concurrency"), ge=1, le=10_000,
        description="Most predictions in flight, all runs together (ASSET_PIPELINE_PROVIDER_MAX_CONCURRENCY).")
    adaptive_concurrency: bool = Field(
        default_factory=from_settings("adaptive_concurrency"),
        description="Lower the in-flight limit on 429s, timeouts and slowdowns (ASSET_PIPELINE_ADAPTIVE_CONCURRENCY).")
    _log: Any = PrivateAttr(default=None)

    _backend: ImageBackend | None = PrivateAttr(default=None)
    _ledger: BudgetLedger | None = PrivateAttr(default=None)
    _bucket: TokenBucket | None = PrivateAttr(default=None)
    _metered: MeteredGenerator | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        enforce_operator_config(self, context, label="image_generator", fixed=FIXED_FIELDS, ceilings=CAP_FIELDS)
        self._log = context.log  # issue 16: the adaptive limit's changes go to the run log
        try:
            backend = self.active_backend
            backend.check_models([self.model or backend.default_model, *self.fallback_models])
        except ConfigurationError as exc:
            raise configuration_failure(exc) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._metered = None

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
                self._backend = self._limited(self.build_backend())  # issue 16: shared provider limits
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
    def metered(self) -> MeteredGenerator:
        """The metered-call core over the active backend; one per resource instance (one per run)."""
        if self._metered is not None:
            return self._metered
        backend, ledger, circuit = self.active_backend, self.ledger, self.circuit  # each takes the lock itself
        with self._lock:
            if self._metered is None:
                self._metered = MeteredGenerator(backend=backend, ledger=ledger, circuit=circuit,
                                                 bucket=self._token_bucket(), policy=self.policy)
            return self._metered

    @property
    def policy(self) -> MeteringPolicy:
        return MeteringPolicy(
            caps=self.caps, max_attempts=self.max_attempts, max_retry_spend_usd=self.max_retry_spend_usd,
            backoff_base_s=self.backoff_base_s, backoff_cap_s=self.backoff_cap_s, max_wait_s=self.max_wait_s,
            fallback_models=tuple(self.fallback_models), max_outage_s=self.max_outage_s,
            poll_interval_s=self.poll_interval_s,
        )

    @property
    def journal(self) -> PredictionJournal:
        return self.metered.journal

    def generate(self, request: GenerationRequest, **options: Any) -> PendingImage:
        """`MeteredGenerator.generate`: render `request` within budget, retrying by failure class."""
        return self.metered.generate(request, **options)

    def settle(self, pending: PendingImage, *, sha256: str | None, problem: str | None = None) -> None:
        self.metered.settle(pending, sha256=sha256, problem=problem)

    def settle_cache_hit(self, request_hash: str, *, cost_usd: float) -> None:
        self.metered.settle_cache_hit(request_hash, cost_usd=cost_usd)

    def wait_until_not_in_flight(self, request: GenerationRequest, **options: Any) -> None:
        self.metered.wait_until_not_in_flight(request, **options)

    def request_for(self, spec: ImageSpec) -> GenerationRequest:
        backend = self.active_backend
        return build_request(spec, backend=backend.name, model=self.model or backend.default_model)



    def _limited(self, backend: ImageBackend) -> ImageBackend:
        """Issue 16: `backend` inside the deployment's shared create rate and adaptive in-flight limit."""
        return provider_limits.limited(
            backend, scope=self.provider_limits,
            store=lambda: provider_limits.limit_store(redis_url=self.redis_url, engine=lambda: self._ledger_engine()),
            requests_per_second=self.requests_per_second, max_concurrency=self.provider_max_concurrency,
            adaptive=self.adaptive_concurrency,
            on_change=self._log_limit)

    def _ledger_engine(self) -> Any:
        if self._ledger is None:  # called with `_lock` held (from active_backend)
            self._ledger = BudgetLedger(ledger_engine(self.database_url))
        return self._ledger.engine

    def _log_limit(self, limit: int) -> None:
        if self._log is not None:
            self._log.info(f"provider in-flight limit now {limit} (adaptive, shared by every run; "
                           f"ceiling {self.provider_max_concurrency})")

    @property
    def concurrency_limit(self) -> int | None:
        """Issue 16: the shared adaptive in-flight limit as last seen, for progress messages."""
        return provider_limits.concurrency_limit(self._backend)

    def _token_bucket(self) -> TokenBucket:
        """Called with `_lock` held."""
        if self._bucket is None:
            self._bucket = TokenBucket(rate=self.requests_per_second, burst=max(1, int(self.requests_per_second)))
        return self._bucket

    @property
    def bucket(self) -> TokenBucket:
        with self._lock:
            return self._token_bucket()

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
        return self.metered.attempt_log
