"""One image, one call: the whole per-image sequence of the metered-call core, storing included.

    ImageProducer.produce(request, run_id=..., cancelled=..., on_progress=...) -> ProducedImage

1. look the request hash up in the store: a hit costs nothing (a reservation a dead run left open
   for that very image is charged now: it was stored before that run could charge it);
2. otherwise render it through `MeteredGenerator` (generation/metered.py): reserve, adopt or
   re-attach, render, journal, verify, retry by failure class; while another live run is paying
   for the same image, wait for it and take its image from the store;
3. store the image (any `storage.images.ImageStorage`), and only then charge what it cost; if
   storing fails the provider's bill is still booked.

The answer is one `ProducedImage`: a cache hit, stored-and-charged, or failed with a reason that
is safe to log. No exception of the pipeline's own escapes: a batch run loses one image, not the
run. No Dagster here; the `image_generator` resource builds one of these per run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from asset_pipeline.errors import (
    AssetPipelineError,
    BudgetExhaustedError,
    CircuitOpenError,
    GenerationError,
    RequestInFlightError,
    StoreError,
)
from asset_pipeline.generation.backend import RenderedImage
from asset_pipeline.generation.metered import MeteredGenerator, PendingImage
from asset_pipeline.generation.progress import ProgressCallback
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.generation.retries import RetryNotice
from asset_pipeline.storage.images import ImageStorage, StoredImage

Kind = Literal["cache_hit", "stored", "failed"]


@dataclass(frozen=True)
class ProducedImage:
    """What became of one request: `kind` says which; `stored` is None exactly when it failed.

    For a stored image `cost_usd` is what was charged, `attempts` and `strategies` what it took;
    for a failure `reason` is safe to log, `failure_kind` sorts it for the run's summary
    (`budget_exhausted`, `provider_unavailable`, `store_error`, a failure class, `error`,
    `unexpected`) and `error` is the exception itself.
    """

    kind: Kind
    request: GenerationRequest
    stored: StoredImage | None = None
    cost_usd: float = 0.0
    attempts: int = 0
    strategies: tuple[str, ...] = ()
    prediction_id: str | None = None
    reason: str | None = None
    failure_kind: str = ""
    error: Exception | None = None

    @property
    def cache_hit(self) -> bool:
        return self.kind == "cache_hit"


class RequestLocks:
    """One lock per request hash within a run: two entries asking for the same picture are
    generated once; the second waits and then finds the first one's image in the store."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, request_hash: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(request_hash, threading.Lock())


class ImageProducer:
    """The metered engine plus a store: produces images for one run. Thread-safe."""

    def __init__(self, *, metered: MeteredGenerator, store: ImageStorage):
        self.metered, self.store = metered, store
        self.locks = RequestLocks()

    def produce(
        self, request: GenerationRequest, *, run_id: str = "", cancelled: threading.Event | None = None,
        on_progress: ProgressCallback | None = None, dead_runs: set[str] | None = None,
        is_alive: Callable[[str], bool] | None = None, on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> ProducedImage:
        """Produce `request`'s image: from the store, or rendered, stored and then charged.

        `dead_runs` (runs seen ended, shared by the run's partitions) grows as holders of stale
        reservations are found dead; `is_alive` says whether another run is still going;
        `on_progress` and `on_retry` must not block.
        """
        try:
            return self._produce(request, run_id, cancelled or threading.Event(), on_progress,
                                 set() if dead_runs is None else dead_runs, is_alive or _always_alive, on_retry)
        # Errors carry the partition key in str(); the result keeps only the reason, since the run
        # log names the partition itself (`key: key: ...` otherwise).
        except BudgetExhaustedError as exc:
            return _failed(request, exc, exc.reason, "budget_exhausted")
        except CircuitOpenError as exc:
            return _failed(request, exc, exc.reason, "provider_unavailable")
        except StoreError as exc:
            return _failed(request, exc, str(exc), "store_error")
        except GenerationError as exc:
            return _failed(request, exc, exc.reason, _failure_kind(exc))
        except AssetPipelineError as exc:
            return _failed(request, exc, str(exc), "error")
        except Exception as exc:  # one broken image must not abort the other partitions of the run
            return _failed(request, exc, f"unexpected {exc.__class__.__name__}: {exc}", "unexpected")

    def _produce(self, request: GenerationRequest, run_id: str, cancelled: threading.Event,
                 on_progress: ProgressCallback | None, dead_runs: set[str], is_alive: Callable[[str], bool],
                 on_retry: Callable[[RetryNotice], None] | None) -> ProducedImage:
        metered, store, key = self.metered, self.store, request.partition_key
        with self.locks(request.request_hash):
            stored = store.find(request.request_hash, partition_key=key)
            if stored is not None:
                if metered.backend.is_paid:
                    metered.settle_cache_hit(request.request_hash, cost_usd=float(stored.record.get("cost_usd") or 0))
                return ProducedImage("cache_hit", request, stored)
            while True:
                try:
                    pending = metered.generate(request, run_id=run_id, cancelled=cancelled, on_progress=on_progress,
                                               dead_runs=frozenset(dead_runs), is_alive=is_alive, on_retry=on_retry)
                except RequestInFlightError:
                    # Another run (a concurrent batch of the same backfill) is paying for this very
                    # image: wait for it to finish, then take its stored image as a cache hit.
                    metered.wait_until_not_in_flight(request, run_id=run_id, cancelled=cancelled,
                                                     is_alive=is_alive, dead_runs=dead_runs)
                    stored = store.find(request.request_hash, partition_key=key)
                    if stored is not None:
                        return ProducedImage("cache_hit", request, stored)
                    continue
                rendered = pending.rendered
                return ProducedImage("stored", request, self._store(pending), cost_usd=rendered.cost_usd,
                                     attempts=pending.attempts, strategies=pending.strategies,
                                     prediction_id=rendered.prediction_id)

    def _store(self, pending: PendingImage) -> StoredImage:
        """Store the image, then charge it; if storing fails the bill is still recorded."""
        request, rendered = pending.request, pending.rendered
        requested = pending.requested or request
        try:
            stored = self.store.put(
                rendered.png,
                partition_key=request.partition_key,
                request_hash=request.request_hash,
                record={**provenance_record(request, rendered), "strategies": list(pending.strategies)},
                original=rendered.original,
                original_format=rendered.original_format,
                # After a fallback model or a simplified prompt, the catalog's own request finds it too.
                aliases=[requested.request_hash] if requested.request_hash != request.request_hash else [],
            )
        except BaseException as exc:
            self.metered.settle(pending, sha256=None, problem=f"{exc.__class__.__name__}: {exc}")
            raise
        self.metered.settle(pending, sha256=stored.sha256)
        return stored


def provenance_record(request: GenerationRequest, rendered: RenderedImage) -> dict[str, object]:
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


def _always_alive(run_id: str) -> bool:
    return True


def _failed(request: GenerationRequest, error: Exception, reason: str, kind: str) -> ProducedImage:
    return ProducedImage("failed", request, reason=reason, failure_kind=kind, error=error)


def _failure_kind(error: GenerationError) -> str:
    """The class of the last failed attempt, for the run's summary."""
    attempts = getattr(error, "attempts", None)
    return attempts[-1].failure_class if attempts else "error"
