"""Produce many partitions' images concurrently inside one Dagster step.

A run over a range (a backfill, `--partition-range`) must not start one process per image, so the
step fans the partitions out to a bounded thread pool and hands each finished `ImageOutcome` back
as soon as it is ready; the asset logs its materialization at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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

    A finished task starts the next key itself (in its done-callback), so the workers never wait
    for the consumer: Dagster stores every event the asset yields before it asks for the next
    outcome, and on PostgreSQL each store is a round trip. Only `max_concurrency` tasks exist at a
    time, so an interrupted run (terminated from the UI) leaves no queue of unstarted work behind:
    closing the generator sets `cancelled` and waits only for the work already in flight. Once
    `stop` is set no new work starts; each remaining key is yielded as `skipped(key)`.
    """
    keys = list(partition_keys)
    finished: queue.SimpleQueue[tuple[str, Future[T] | str]] = queue.SimpleQueue()
    in_flight: set[Future[T]] = set()
    lock = threading.RLock()  # a done-callback runs at once, under the lock, if its task already ended
    closing = threading.Event()
    next_index = 0

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="image") as pool:

        def start_more() -> None:
            nonlocal next_index
            with lock:
                while next_index < len(keys) and len(in_flight) < max_concurrency and not closing.is_set():
                    key = keys[next_index]
                    next_index += 1
                    if stop is not None and stop.is_set():
                        assert skipped is not None, "a stop event needs a `skipped` outcome"
                        finished.put(("skipped", key))
                        continue
                    future = pool.submit(work, key)
                    in_flight.add(future)
                    future.add_done_callback(on_done)

        def on_done(future: Future[T]) -> None:
            with lock:
                in_flight.discard(future)
                finished.put(("done", future))
                start_more()

        completed = False
        try:
            start_more()
            for _ in keys:
                kind, item = _next_finished(finished)
                yield skipped(item) if kind == "skipped" else item.result()  # type: ignore[misc, union-attr, arg-type]
            completed = True
        finally:
            closing.set()
            if not completed and cancelled is not None:
                cancelled.set()
            with lock:
                for future in list(in_flight):
                    future.cancel()


def _next_finished(finished: queue.SimpleQueue[tuple[str, object]]) -> tuple[str, object]:
    """Wait for the next finished item, waking every 0.25 s.

    The kernel may deliver a termination signal (SIGINT/SIGTERM) to any thread; Python only runs
    its handler when the main thread executes bytecode, so an untimed wait could hold off Dagster's
    run termination until an image finishes. Short waits let the interrupt through at once.
    """
    while True:
        try:
            return finished.get(timeout=0.25)
        except queue.Empty:
            continue


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
