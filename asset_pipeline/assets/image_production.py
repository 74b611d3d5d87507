"""One partition's image: one call to the generator, which owns the whole metered sequence
(cache, in-flight wait, render, store, charge: `generation/producer.py`); this module only turns
the answer into an `ImageOutcome` for the step to log (checks, preview, the fallback image).

Runs in a worker thread of the `images` step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asset_pipeline.assets.image_checks import CheckOutcome, evaluate_image_checks
from asset_pipeline.assets.progress_reports import PartitionProgress, Publish, no_publish
from asset_pipeline.catalog.spec import Catalog, ImageSpec
from asset_pipeline.errors import GenerationError
from asset_pipeline.generation.fallback import fallback_image
from asset_pipeline.generation.producer import ProducedImage
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.generation.retries import RetryNotice
from asset_pipeline.imaging.inspect import ImageFacts, inspect_image
from asset_pipeline.imaging.thumbnails import PREVIEW_SIDE, jpeg_markdown
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.storage.images import StoredImage


@dataclass
class RunScope:
    """What the partitions of one run share: its id and the signals to stop."""

    run_id: str
    cancelled: threading.Event = field(default_factory=threading.Event)  # the run was terminated
    budget_exhausted: threading.Event = field(default_factory=threading.Event)  # start no new paid work
    publish: Publish = no_publish  # progress messages for the hub; must not block
    run_is_alive: Callable[[str], bool] = lambda run_id: True  # is another Dagster run still going?
    dead_runs: set[str] = field(default_factory=set)  # runs seen ended: their reservations are stale
    on_retry: Callable[[RetryNotice], None] | None = None  # hears of every failed attempt (the run log)

    def progress(self, partition_key: str) -> PartitionProgress:
        return PartitionProgress(self.publish, self.run_id, partition_key)


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one partition; `stored` is None exactly when `error` is set."""

    partition_key: str
    spec: ImageSpec | None
    request: GenerationRequest | None
    stored: StoredImage | None = None
    error: str | None = None
    cache_hit: bool = False
    cost_usd: float = 0.0
    attempts: int = 0
    prediction_id: str | None = None
    duration_s: float = 0.0
    checks: tuple[CheckOutcome, ...] = ()
    preview: str | None = None
    strategies: tuple[str, ...] = ()
    failure_kind: str = ""  # for the run's summary: budget_exhausted, provider_unavailable, a failure class, ...


def produce_image(
    partition_key: str, *, catalog: Catalog, generator: ImageGenerator, store: ImageStore, scope: RunScope
) -> ImageOutcome:
    """Produce one partition's image and tell the hub how it went."""
    progress = scope.progress(partition_key)
    progress.status("generating")
    outcome = _produce(partition_key, catalog, generator, store, scope, progress)
    if outcome.error is not None:
        progress.status("failed", message=outcome.error)
    elif outcome.cache_hit:
        progress.status("cached", path=str(outcome.stored.path), cost_usd=0.0)
    else:
        progress.status("completed", path=str(outcome.stored.path), cost_usd=outcome.cost_usd)
    return outcome


def _produce(
    partition_key: str, catalog: Catalog, generator: ImageGenerator, store: ImageStore, scope: RunScope,
    progress: PartitionProgress,
) -> ImageOutcome:
    started = time.perf_counter()
    spec = catalog.by_id.get(partition_key)
    if spec is None:
        return ImageOutcome(partition_key, None, None, error=f"no entry with id '{partition_key}' in {catalog.source}")
    request = generator.request_for(spec)
    result = generator.produce(request, store=store, run_id=scope.run_id, cancelled=scope.cancelled,
                               on_progress=progress.step, dead_runs=scope.dead_runs, is_alive=scope.run_is_alive,
                               on_retry=scope.on_retry)
    if result.stored is None:
        return _failure_outcome(spec, result, generator, store, scope, started)
    stored = result.stored
    facts: ImageFacts | ValueError
    try:
        facts = inspect_image(stored.path.read_bytes(), preview_side=PREVIEW_SIDE)
    except ValueError as exc:
        facts = exc
    except OSError as exc:
        return ImageOutcome(partition_key, spec, request, error=f"unexpected {exc.__class__.__name__}: {exc}",
                            duration_s=time.perf_counter() - started, failure_kind="unexpected")
    return ImageOutcome(
        partition_key,
        spec,
        request,
        stored=stored,
        cache_hit=result.cache_hit,
        cost_usd=result.cost_usd,
        attempts=result.attempts,
        strategies=result.strategies,
        prediction_id=result.prediction_id,
        duration_s=time.perf_counter() - started,
        checks=evaluate_image_checks(facts, spec, fallback=bool(stored.record.get("fallback", False))),
        preview=_preview(facts, partition_key),
    )


def _failure_outcome(spec: ImageSpec, result: ProducedImage, generator: ImageGenerator, store: ImageStore,
                     scope: RunScope, started: float) -> ImageOutcome:
    """A failed image: a spent budget stops new paid work in the run; a failed generation gets its
    category's fallback image when fallbacks are on (never after a cap or an outage)."""
    if result.failure_kind == "budget_exhausted":
        scope.budget_exhausted.set()
    error = result.error
    if (isinstance(error, GenerationError) and generator.fallback_images
            and result.failure_kind not in ("budget_exhausted", "provider_unavailable")):
        return _fallback_outcome(spec, result.request, error, generator, store, started)
    return ImageOutcome(spec.id, spec, result.request, error=result.reason, duration_s=time.perf_counter() - started,
                        failure_kind=result.failure_kind)


def _fallback_outcome(
    spec: ImageSpec, request: GenerationRequest, error: GenerationError, generator: ImageGenerator,
    store: ImageStore, started: float,
) -> ImageOutcome:
    """Every strategy failed and fallbacks are on: the partition gets its category's fallback image."""
    png = fallback_image(request, directory=generator.fallback_image_dir)
    record = {"backend": request.backend, "model": "fallback", "seed": request.seed, "width": request.width,
              "height": request.height, "cost_usd": 0.0, "fallback_reason": error.reason[:500]}
    stored = store.put_fallback(png, partition_key=spec.id, record=record)
    facts = inspect_image(png, preview_side=PREVIEW_SIDE)
    return ImageOutcome(
        spec.id, spec, request, stored=stored, attempts=len(getattr(error, "attempts", [])) or 1,
        duration_s=time.perf_counter() - started, checks=evaluate_image_checks(facts, spec, fallback=True),
        preview=_preview(facts, spec.id),
    )


def not_started(partition_key: str, reason: str) -> ImageOutcome:
    return ImageOutcome(partition_key, None, None, error=reason, failure_kind="not_started")


def _preview(facts: ImageFacts | ValueError, alt: str) -> str | None:
    if isinstance(facts, ImageFacts) and facts.preview_jpeg:
        return jpeg_markdown(facts.preview_jpeg, alt=alt)
    return None
