"""Produce many partitions' images concurrently inside one Dagster step.

A run over a range (a backfill, `--partition-range`) must not start one process per image, so the
step fans the partitions out to a bounded thread pool and hands each finished `ImageOutcome` back
as soon as it is ready; the asset logs its materialization at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import dagster as dg


T = TypeVar("T")


def run_concurrently(
    partition_keys: Iterable[str],
    work: Callable[[str], T],
    *,
    max_concurrency: int,
    stop: threading.Event | None = None,
    skipped: Callable[[str], T] | None = None,
    cancelled: threading.Event | None = None,
) -> Iterator[T]:
    """Yield each partition's outcome as it finishes, at most `max_concurrency` in flight.

    Only `max_concurrency` tasks are submitted at a time, so an interrupted run (terminated from
    the UI) leaves no queue of unstarted work behind: closing the generator sets `cancelled` and
    waits only for the work already in flight. Once `stop` is set no new work starts; each
    remaining key is yielded as `skipped(key)`.
    """
    pending_keys = iter(partition_keys)
    in_flight: set[Future[T]] = set()
    finished = False
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="image") as pool:
        try:
            for key in pending_keys:
                if stop is not None and stop.is_set():
                    assert skipped is not None, "a stop event needs a `skipped` outcome"
                    yield skipped(key)
                    continue
                in_flight.add(pool.submit(work, key))
                if len(in_flight) >= max_concurrency:
                    done, in_flight = _wait_some(in_flight)
                    yield from (future.result() for future in done)
            while in_flight:
                done, in_flight = _wait_some(in_flight)
                yield from (future.result() for future in done)
            finished = True
        finally:
            if not finished and cancelled is not None:
                cancelled.set()
            for future in in_flight:
                future.cancel()


def _wait_some(futures: set[Future[T]]) -> tuple[set[Future[T]], set[Future[T]]]:
    """Wait for at least one future, waking every 0.25 s.

    The kernel may deliver a termination signal (SIGINT/SIGTERM) to any thread; Python only runs
    its handler when the main thread executes bytecode, so an untimed wait could hold off Dagster's
    run termination until an image finishes. Short waits let the interrupt through at once.
    """
    while True:
        done, not_done = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
        if done:
            return done, not_done


def per_partition_asset(
    *, partitions_per_run: int | None = None, **asset_options: object
) -> Callable[[Callable[..., object]], dg.AssetsDefinition]:
    """`dg.asset` for assets that log one materialization per partition themselves.

    A backfill or `--partition-range` becomes one run (`BackfillPolicy.single_run()`), or runs of
    `partitions_per_run` partitions each that the run queue spreads over processes or machines
    (`BackfillPolicy.multi_run`). The asset yields no output (`output_required=False`), so Dagster
    does not log a second materialization per partition at the end of the step.
    """
    policy = dg.BackfillPolicy.single_run() if partitions_per_run is None \
        else dg.BackfillPolicy.multi_run(max_partitions_per_run=partitions_per_run)
    return dg.asset(backfill_policy=policy, output_required=False, **asset_options)  # type: ignore[arg-type]


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
