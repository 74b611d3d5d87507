"""The generator resource: run config -> a `MeteredGenerator` (generation/metered.py) over the
configured backend, built on first use and closed in teardown. The money path lives in the core;
this resource only chooses the backend, guards the operator's settings and wires the ledger.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
from pydantic import Field, PrivateAttr, model_validator

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.config_blocks import BreakerOptions, BudgetOptions, RetryOptions
from asset_pipeline.errors import (
    ConfigurationError,
)
from asset_pipeline.generation.backend import ImageBackend
from asset_pipeline.generation.delivery import DeliveryLimits
from asset_pipeline.generation.delivery_hosts import delivery_hosts
from asset_pipeline.generation.metered import MeteredGenerator, MeteringPolicy
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.producer import ImageProducer, ProducedImage
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.ledger.attempts import AttemptLog
from asset_pipeline.ledger.budget_ledger import BudgetLedger, BudgetStatus
from asset_pipeline.ledger.circuit import CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.journal import PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.ledger.recorded_caps import record_caps
from asset_pipeline.ledger.reviews import Review, review_states
from asset_pipeline.ledger.reviews import State as ReviewState
from asset_pipeline.resources import provider_limits
from asset_pipeline.resources.comfyui_options import ComfyUIOptions
from asset_pipeline.resources.generator_config import DiffusersConfig, ModelPriceConfig, default_price_config
from asset_pipeline.resources.run_config_guard import configuration_failure, enforce_operator_config
from asset_pipeline.settings import BLOCKS, fold_flat_names, from_settings, setting_field
from asset_pipeline.storage.images import ImageStorage

# What run config may not change (the operator's environment decides), and the caps it may only lower.
FIXED_FIELDS = {
    "backend": "ASSET_PIPELINE_BACKEND",
    "database_url": "ASSET_PIPELINE_DATABASE_URL",
    "replicate_api_token": "REPLICATE_API_TOKEN",
    "prices": "the price table in definitions",
    "diffusers.gpu_hour_usd": "ASSET_PIPELINE_GPU_HOUR_USD",
    "delivery_hosts": "ASSET_PIPELINE_DELIVERY_HOSTS",
    "comfyui.urls": "ASSET_PIPELINE_COMFYUI_URL",
    "comfyui.workflow": "ASSET_PIPELINE_COMFYUI_WORKFLOW",
    "comfyui.gpu_hour_usd": "ASSET_PIPELINE_GPU_HOUR_USD",
    "redis_url": "ASSET_PIPELINE_REDIS_URL",  # issue 16
    "provider_limits": "ASSET_PIPELINE_PROVIDER_LIMITS",  # issue 16
}
CAP_FIELDS = {
    **{f"budget.{name}": variable for name, variable in BLOCKS["budget"].variables().items()},
    "retries.max_retry_spend_usd": BLOCKS["retries"].variables()["max_retry_spend_usd"],
    "max_download_mb": "ASSET_PIPELINE_MAX_DOWNLOAD_MB",
    "download_timeout_s": "ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S",
    "max_output_megapixels": "ASSET_PIPELINE_MAX_OUTPUT_MEGAPIXELS",
    # How long one image may run is how much GPU time or predict time it reserves: lower only.
    "max_predict_seconds": "image_generator.max_predict_seconds in definitions.py",
    "comfyui.max_job_seconds": "ASSET_PIPELINE_COMFYUI_MAX_JOB_SECONDS",
    "diffusers.max_render_seconds": "image_generator.diffusers.max_render_seconds in definitions.py",
}


@dataclass(frozen=True)
class RunSpending:
    spent_run_usd: float
    status: BudgetStatus


class ImageGenerator(dg.ConfigurableResource):
    """Generates images through one backend; shared by every partition of a run."""

    # Every default comes from the operator's settings (`setting_field`, `from_settings`) or a factory,
    # never a plain class default: Dagster then leaves unset fields out of a partial run config, so they
    # keep the operator's values. Bounds and descriptions are declared once, in settings.py and the
    # config blocks. Which fields run config may change at all: FIXED_FIELDS, CAP_FIELDS above.
    backend: Literal["placeholder", "replicate", "diffusers", "comfyui"] = setting_field("backend")
    model: str | None = setting_field("model")
    max_concurrency: int = setting_field("max_concurrency")
    database_url: str = Field(
        default_factory=from_settings("ledger_url"),
        description="Ledger database, a SQLAlchemy URL (ASSET_PIPELINE_DATABASE_URL); fixed by the operator.",
    )
    budget: BudgetOptions = Field(default_factory=from_settings("budget"),
                                  description="Spending caps (ASSET_PIPELINE_BUDGET_*); run config may only lower them.")
    retries: RetryOptions = Field(default_factory=from_settings("retries"), description="Attempts, backoff, fallback models.")
    breaker: BreakerOptions = Field(default_factory=from_settings("breaker"), description="The provider circuit breaker.")
    diffusers: DiffusersConfig = Field(
        default_factory=from_settings("diffusers", lambda options: DiffusersConfig(**options.model_dump())), description="Local SDXL pipeline settings (ASSET_PIPELINE_DIFFUSERS_*)."
    )
    prices: dict[str, ModelPriceConfig] = Field(
        default_factory=default_price_config, description="Price table; fixed by the operator."
    )
    max_predict_seconds: float = Field(
        default_factory=lambda: 300.0, gt=0,
        description="A prediction running longer is cancelled; time-billed models reserve this long.",
    )
    poll_interval_s: float = setting_field("poll_interval_s")
    requests_per_second: float = setting_field("requests_per_second")
    comfyui: ComfyUIOptions = Field(
        default_factory=ComfyUIOptions, description="ComfyUI servers and workflow (ASSET_PIPELINE_COMFYUI_*)."
    )
    replicate_api_token: str | None = Field(
        default_factory=lambda: None,
        description="Replicate API token; bind with dg.EnvVar('REPLICATE_API_TOKEN'); fixed by the operator.",
    )
    fallback_images: bool = setting_field("fallback_images")
    fallback_image_dir: str | None = setting_field("fallback_image_dir", lambda path: str(path) if path else None)
    delivery_hosts: str | None = setting_field("delivery_hosts")
    max_download_mb: float = setting_field("max_download_mb")
    download_timeout_s: float = setting_field("download_timeout_s")
    max_output_megapixels: float = setting_field("max_output_megapixels")

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_names(cls, data: Any) -> Any:
        """`ImageGenerator(budget_total_usd=5, max_attempts=2)`: flat names set fields of the blocks."""
        return fold_flat_names(data)

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
    _producer: ImageProducer | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        enforce_operator_config(self, context, label="image_generator", fixed=FIXED_FIELDS, ceilings=CAP_FIELDS)
        self._log = context.log  # issue 16: the adaptive limit's changes go to the run log
        try:
            backend = self.active_backend
            backend.check_models([self.model or backend.default_model, *self.retries.fallback_models])
        except ConfigurationError as exc:
            raise configuration_failure(exc) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            self._metered = None
            self._producer = None

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
        if self.backend == "comfyui":
            from asset_pipeline.resources.comfyui_options import build_comfyui_backend

            return build_comfyui_backend(self.comfyui, poll_interval_s=self.poll_interval_s,
                                         max_download_bytes=int(self.max_download_mb * 1024 * 1024),
                                         download_timeout_s=self.download_timeout_s,
                                         max_output_pixels=int(self.max_output_megapixels * 1_000_000))
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
        return self.budget.caps

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
        retries = self.retries
        return MeteringPolicy(
            caps=self.caps, max_attempts=retries.max_attempts, max_retry_spend_usd=retries.max_retry_spend_usd,
            backoff_base_s=retries.backoff_base_s, backoff_cap_s=retries.backoff_cap_s, max_wait_s=retries.max_wait_s,
            fallback_models=tuple(retries.fallback_models), max_outage_s=retries.max_outage_s,
            poll_interval_s=self.poll_interval_s,
        )

    @property
    def journal(self) -> PredictionJournal:
        return self.metered.journal

    def produce(self, request: GenerationRequest, *, store: ImageStorage, **options: Any) -> ProducedImage:
        """The whole per-image sequence in one call (`ImageProducer.produce`): from `store`, or
        rendered within budget, stored, then charged; a failure comes back with its reason."""
        metered = self.metered
        with self._lock:
            if self._producer is None or self._producer.store is not store or self._producer.metered is not metered:
                self._producer = ImageProducer(metered=metered, store=store)
            producer = self._producer
        return producer.produce(request, **options)

    # Narrow queries for the schedule, the sensor and the CLI, so they never reach through to the backend.
    @property
    def is_paid(self) -> bool:
        """Whether images cost money (and so count against the budget)."""
        return self.active_backend.is_paid

    @property
    def provider(self) -> str:
        """The provider's name, as the circuit breaker records it in the ledger."""
        return self.active_backend.name

    def record_caps(self, *, run_id: str) -> None:
        """Record the caps this run is held to in the ledger: the hub, the sensor, the schedule and
        the commands take the latest recorded caps as the ones in force."""
        record_caps(self.ledger.engine, run_id=run_id, caps=self.caps)

    def run_spending(self, *, run_id: str) -> RunSpending:
        """What `run_id` was charged, and where the budget stands against this run's caps."""
        return RunSpending(spent_run_usd=self.ledger.spent_by_run(run_id), status=self.ledger.status(self.caps))

    def review_states(self, images: Mapping[str, str | None]) -> dict[str, tuple[ReviewState, Review | None]]:
        """Partition -> its review state, judged on the image (sha256) it has now (the `approved` check)."""
        return review_states(self.ledger.engine, images)

    def reservation_usd(self, request: GenerationRequest) -> float:
        """What generating `request` reserves against the budget: the most it may cost."""
        return self.active_backend.reservation_usd(request.model)

    def request_for(self, spec: ImageSpec) -> GenerationRequest:
        backend = self.active_backend
        return build_request(spec, backend=backend.name, model=self.model or backend.default_model,
                             variant=backend.request_variant)

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
        return CircuitBreaker(self.ledger.engine, provider=self.active_backend.name, config=self.breaker.config)

    @property
    def attempt_log(self) -> AttemptLog:
        return self.metered.attempt_log
