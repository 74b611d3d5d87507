"""run_concurrently: bounded fan-out whose workers never wait for a slow consumer."""

from __future__ import annotations

import threading
import time

from asset_pipeline.assets.partition_runner import run_concurrently

KEYS = [f"k{i}" for i in range(12)]


class Tracker:
    def __init__(self, seconds: float = 0.02):
        self.seconds, self.lock = seconds, threading.Lock()
        self.running = self.peak = 0
        self.started: list[str] = []
        self.finished: list[str] = []

    def __call__(self, key: str) -> str:
        with self.lock:
            self.started.append(key)
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.finished.append(key)
        return key.upper()


def test_every_key_is_yielded_once_with_at_most_the_limit_in_flight() -> None:
    work = Tracker()
    assert sorted(run_concurrently(KEYS, work, max_concurrency=3)) == sorted(k.upper() for k in KEYS)
    assert work.peak <= 3 and sorted(work.started) == sorted(KEYS)


def test_the_workers_keep_going_while_the_consumer_is_busy() -> None:
    work = Tracker(seconds=0.01)
    outcomes = run_concurrently(KEYS, work, max_concurrency=2)
    next(outcomes)
    time.sleep(0.5)  # the consumer is storing events; the pool must not idle meanwhile
    assert len(work.finished) == len(KEYS)
    assert len(list(outcomes)) == len(KEYS) - 1


def test_after_stop_the_remaining_keys_are_skipped_and_never_started() -> None:
    stop = threading.Event()

    def work(key: str) -> str:
        if key == "k1":
            stop.set()
        return key

    outcomes = list(run_concurrently(KEYS, work, max_concurrency=1, stop=stop, skipped=lambda key: f"skipped {key}"))
    assert outcomes[:2] == ["k0", "k1"] and outcomes[2:] == [f"skipped {key}" for key in KEYS[2:]]


def test_closing_early_cancels_and_starts_nothing_more() -> None:
    cancelled = threading.Event()
    work = Tracker(seconds=0.05)
    outcomes = run_concurrently(KEYS, work, max_concurrency=2, cancelled=cancelled)
    next(outcomes)
    outcomes.close()  # what a terminated Dagster step does to the asset's generator
    assert cancelled.is_set()
    started = len(work.started)
    time.sleep(0.2)
    assert len(work.started) == started <= 4 and work.running == 0
