"""A non-blocking, bounded, batching sender of hub events, for code that must never wait on the hub.

`publish` only appends to a bounded buffer (microseconds, never blocks); one daemon thread
POSTs what has accumulated, waiting `linger_s` after the first event so that the events of one
moment share a POST (a denoising loop publishes every few milliseconds on a GPU; one POST per
step would cost more CPU than the step's own Python). When the buffer is full or the hub is
unreachable, events are dropped and counted, and `on_problem` is called once, the first time,
so a run's log says so a single time instead of once per event.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

PostBatch = Callable[[list[dict[str, Any]]], None]


class BufferedPublisher:
    def __init__(self, post: PostBatch, *, buffer_size: int = 10_000, batch_max: int = 500, linger_s: float = 0.0,
                 retry_after_s: float = 1.0, on_problem: Callable[[str], None] = lambda message: None):
        self._post = post
        self._linger_s = linger_s
        self._buffer: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=buffer_size)
        self._batch_max = batch_max
        self._retry_after_s = retry_after_s
        self._on_problem = on_problem
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._reported = False
        self.sent = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="hub-publisher", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> bool:
        """Queue `event`; False (and counted as dropped) when the buffer is full."""
        try:
            self._idle.clear()
            self._buffer.put_nowait(event)
            return True
        except queue.Full:
            self._drop(1, "progress buffer full")
            return False

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is buffered (up to `timeout_s`), then stop the thread."""
        self._idle.wait(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._buffer.get(timeout=0.1)
            except queue.Empty:
                self._idle.set()
                continue
            if self._linger_s:
                self._stop.wait(self._linger_s)
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._buffer.get_nowait())
                except queue.Empty:
                    break
            try:
                self._post(batch)
            except Exception as exc:  # noqa: BLE001 - any failure to deliver is an outage, never an error
                self._drop(len(batch), f"cannot deliver to the progress hub ({exc.__class__.__name__})")
                self._stop.wait(self._retry_after_s)
                continue
            self.sent += len(batch)
            if self._buffer.empty():
                self._idle.set()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if not self._reported:
            self._reported = True
            self._on_problem(f"{why}; progress events are dropped until it recovers (generation goes on)")
