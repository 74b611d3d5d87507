"""Produce many partitions' images concurrently inside one Dagster step.

A run over a range (a backfill, `--partition-range`) must not start one process per image, so the
step fans the partitions out to a bounded thread pool and hands each finished `ImageOutcome` back
as soon as it is ready; the asset logs its materialization at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg

from asset_pipeline.assets.image_checks import CheckOutcome, evaluate_image_checks
from asset_pipeline.catalog.spec import Catalog, ImageSpec
from asset_pipeline.errors import AssetPipelineError
from asset_pipeline.generation.backend import RenderedImage
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.imaging.inspect import ImageFacts, inspect_image
from asset_pipeline.imaging.thumbnails import PREVIEW_SIDE, jpeg_markdown
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore, StoredImage

T = TypeVar("T")


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


class RequestLocks:
    """One lock per request hash within a run: two entries asking for the same picture are
    generated once; the second waits and then finds the first one's image in the store."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, request_hash: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(request_hash, threading.Lock())


def produce_image(
    partition_key: str, *, catalog: Catalog, generator: ImageGenerator, store: ImageStore, locks: RequestLocks
) -> ImageOutcome:
    """Return the stored image for one partition: from the store when its request hash is known, else generated."""
    started = time.perf_counter()
    spec = catalog.by_id.get(partition_key)
    if spec is None:
        return ImageOutcome(partition_key, None, None, error=f"no entry with id '{partition_key}' in {catalog.source}")
    request = generator.request_for(spec)
    try:
        with locks(request.request_hash):
            stored = store.find(request.request_hash, partition_key=partition_key)
            cache_hit = stored is not None
            rendered = None if cache_hit else generator.generate(request)
            if rendered is not None:
                stored = store.put(
                    rendered.png,
                    partition_key=partition_key,
                    request_hash=request.request_hash,
                    record=_provenance_record(request, rendered),
                )
        assert stored is not None
        facts: ImageFacts | ValueError
        try:
            facts = inspect_image(stored.path.read_bytes(), preview_side=PREVIEW_SIDE)
        except ValueError as exc:
            facts = exc
    except AssetPipelineError as exc:
        return ImageOutcome(partition_key, spec, request, error=str(exc), duration_s=time.perf_counter() - started)
    except Exception as exc:  # one broken image must not abort the other partitions of the run
        reason = f"unexpected {exc.__class__.__name__}: {exc}"
        return ImageOutcome(partition_key, spec, request, error=reason, duration_s=time.perf_counter() - started)
    return ImageOutcome(
        partition_key,
        spec,
        request,
        stored=stored,
        cache_hit=cache_hit,
        cost_usd=rendered.cost_usd if rendered else 0.0,
        attempts=rendered.attempts if rendered else 0,
        prediction_id=rendered.prediction_id if rendered else None,
        duration_s=time.perf_counter() - started,
        checks=evaluate_image_checks(facts, spec, fallback=bool(stored.record.get("fallback", False))),
        preview=_preview(facts, partition_key),
    )


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


def run_concurrently(partition_keys: Iterable[str], work: Callable[[str], T], *, max_concurrency: int) -> Iterator[T]:
    """Yield each partition's outcome as it finishes, at most `max_concurrency` in flight.

    Only `max_concurrency` tasks are submitted at a time, so an interrupted run (terminated from
    the UI) leaves no queue of unstarted work behind: closing the generator waits only for the
    images already in flight.
    """
    pending_keys = iter(partition_keys)
    in_flight: set[Future[T]] = set()
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="image") as pool:
        try:
            for key in pending_keys:
                in_flight.add(pool.submit(work, key))
                if len(in_flight) >= max_concurrency:
                    done, in_flight = _wait_some(in_flight)
                    yield from (future.result() for future in done)
            while in_flight:
                done, in_flight = _wait_some(in_flight)
                yield from (future.result() for future in done)
        finally:
            for future in in_flight:
                future.cancel()


def _wait_some(futures: set[Future[T]]) -> tuple[set[Future[T]], set[Future[T]]]:
    done, not_done = wait(futures, return_when=FIRST_COMPLETED)
    return done, not_done


def per_partition_asset(**asset_options: object) -> Callable[[Callable[..., object]], dg.AssetsDefinition]:
    """`dg.asset` for assets that log one materialization per partition themselves.

    A backfill or `--partition-range` becomes one run (`BackfillPolicy.single_run()`), and the
    asset yields no output (`output_required=False`), so Dagster does not log a second
    materialization per partition at the end of the step.
    """
    return dg.asset(backfill_policy=dg.BackfillPolicy.single_run(), output_required=False, **asset_options)  # type: ignore[arg-type]


def raise_for_failures(failures: dict[str, str], *, total: int) -> None:
    """End the step as failed, naming each failed partition and why; the others stay materialized.

    Retries are not allowed here: each failure already has a stated reason, and the partitions that
    succeeded would only be re-checked. Failed partitions are re-run through Dagster's
    "re-execute failed" or "backfill failed and missing".
    """
    if not failures:
        return
    listing = "\n".join(f"  {key}: {reason}" for key, reason in sorted(failures.items()))
    raise dg.Failure(
        description=f"{len(failures)} of {total} partition(s) failed:\n{listing}",
        metadata={"failed_partitions": sorted(failures), "reasons": failures},
        allow_retries=False,
    )
