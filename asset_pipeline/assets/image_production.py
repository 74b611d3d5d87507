"""One partition's image: from the store when its request was already made, else generated within budget.

Runs in a worker thread of the `images` step; everything it learns goes into an `ImageOutcome`
for the step to log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asset_pipeline.assets.image_checks import CheckOutcome, evaluate_image_checks
from asset_pipeline.assets.progress_reports import PartitionProgress, Publish, no_publish
from asset_pipeline.catalog.spec import Catalog, ImageSpec
from asset_pipeline.errors import (
    AssetPipelineError,
    BudgetExhaustedError,
    CircuitOpenError,
    GenerationError,
    RequestInFlightError,
    StoreError,
)
from asset_pipeline.generation.backend import RenderedImage
from asset_pipeline.generation.fallback import fallback_image
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.generation.retries import RetryNotice
from asset_pipeline.imaging.inspect import ImageFacts, inspect_image
from asset_pipeline.imaging.thumbnails import PREVIEW_SIDE, jpeg_markdown
from asset_pipeline.resources.image_generator import ImageGenerator, PendingImage
from asset_pipeline.resources.image_store import ImageStore, StoredImage


class RequestLocks:
    """One lock per request hash within a run: two entries asking for the same picture are
    generated once; the second waits and then finds the first one's image in the store."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, request_hash: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(request_hash, threading.Lock())


@dataclass
class RunScope:
    """What the partitions of one run share: its id, request locks, and the signals to stop."""

    run_id: str
    locks: RequestLocks = field(default_factory=RequestLocks)
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
    pending: PendingImage | None = None
    try:
        with scope.locks(request.request_hash):
            stored = store.find(request.request_hash, partition_key=partition_key)
            if stored is not None and generator.active_backend.is_paid:
                generator.settle_cache_hit(request.request_hash, cost_usd=float(stored.record.get("cost_usd") or 0))
            while stored is None:
                try:
                    pending = generator.generate(request, run_id=scope.run_id, cancelled=scope.cancelled,
                                                 on_progress=progress.step, dead_runs=frozenset(scope.dead_runs),
                                                 is_alive=scope.run_is_alive, on_retry=scope.on_retry)
                except RequestInFlightError:
                    # Another run (a concurrent batch of the same backfill) is paying for this very
                    # image: wait for it to finish, then take its stored image as a cache hit.
                    generator.wait_until_not_in_flight(request, run_id=scope.run_id, cancelled=scope.cancelled,
                                                       is_alive=scope.run_is_alive, dead_runs=scope.dead_runs)
                    stored = store.find(request.request_hash, partition_key=partition_key)
                    continue
                stored = _store(pending, store, generator)
        facts: ImageFacts | ValueError
        try:
            facts = inspect_image(stored.path.read_bytes(), preview_side=PREVIEW_SIDE)
        except ValueError as exc:
            facts = exc
    # Errors carry the partition key in str(); the outcome keeps only the reason, since the run log
    # and the step's failure name the partition themselves (`key: key: ...` otherwise).
    except BudgetExhaustedError as exc:
        scope.budget_exhausted.set()
        return ImageOutcome(partition_key, spec, request, error=exc.reason, duration_s=time.perf_counter() - started,
                            failure_kind="budget_exhausted")
    except (CircuitOpenError, StoreError) as exc:
        kind = "provider_unavailable" if isinstance(exc, CircuitOpenError) else "store_error"
        return ImageOutcome(partition_key, spec, request, error=getattr(exc, "reason", str(exc)),
                            duration_s=time.perf_counter() - started, failure_kind=kind)
    except GenerationError as exc:
        if not generator.fallback_images:
            return ImageOutcome(partition_key, spec, request, error=exc.reason, duration_s=time.perf_counter() - started,
                                failure_kind=_failure_kind(exc))
        return _fallback_outcome(spec, request, exc, generator, store, started)
    except AssetPipelineError as exc:
        return ImageOutcome(partition_key, spec, request, error=str(exc), duration_s=time.perf_counter() - started,
                            failure_kind="error")
    except Exception as exc:  # one broken image must not abort the other partitions of the run
        reason = f"unexpected {exc.__class__.__name__}: {exc}"
        return ImageOutcome(partition_key, spec, request, error=reason, duration_s=time.perf_counter() - started,
                            failure_kind="unexpected")
    rendered = pending.rendered if pending else None
    return ImageOutcome(
        partition_key,
        spec,
        request,
        stored=stored,
        cache_hit=pending is None,
        cost_usd=rendered.cost_usd if rendered else 0.0,
        attempts=pending.attempts if pending else 0,
        strategies=pending.strategies if pending else (),
        prediction_id=rendered.prediction_id if rendered else None,
        duration_s=time.perf_counter() - started,
        checks=evaluate_image_checks(facts, spec, fallback=bool(stored.record.get("fallback", False))),
        preview=_preview(facts, partition_key),
    )


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


def _failure_kind(error: GenerationError) -> str:
    """The class of the last failed attempt, for the run's summary."""
    attempts = getattr(error, "attempts", None)
    return attempts[-1].failure_class if attempts else "error"


def _store(pending: PendingImage, store: ImageStore, generator: ImageGenerator) -> StoredImage:
    """Store the image, then charge it; if storing fails the bill is still recorded."""
    request, rendered = pending.request, pending.rendered
    requested = pending.requested or request
    try:
        stored = store.put(
            rendered.png,
            partition_key=request.partition_key,
            request_hash=request.request_hash,
            record={**_provenance_record(request, rendered), "strategies": list(pending.strategies)},
            original=rendered.original,
            original_format=rendered.original_format,
            # After a fallback model or a simplified prompt, the catalog's own request finds it too.
            aliases=[requested.request_hash] if requested.request_hash != request.request_hash else [],
        )
    except BaseException as exc:
        generator.settle(pending, sha256=None, problem=f"{exc.__class__.__name__}: {exc}")
        raise
    generator.settle(pending, sha256=stored.sha256)
    return stored


def _provenance_record(request: GenerationRequest, rendered: RenderedImage) -> dict[str, object]:
    """What the store keeps beside an image: how it was made and what it cost."""
    return {
        "backend": request.backend,
        "model": rendered.model,
        "seed": request.seed,
        "width": request.width,
        "height": request.height,
        "cost_usd": rendered.cost_usd,
        "prediction_id": rendered.prediction_id,
        "fallback": False,
    }


def _preview(facts: ImageFacts | ValueError, alt: str) -> str | None:
    if isinstance(facts, ImageFacts) and facts.preview_jpeg:
        return jpeg_markdown(facts.preview_jpeg, alt=alt)
    return None
