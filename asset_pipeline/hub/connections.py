"""Subscribers and fan-out: one bounded queue per client, so a slow client never slows the others.

A queue is bounded both in messages and in characters: a client that stops reading is cut off
(1013, it may reconnect and resume) before it holds more than `max_chars` of the hub's memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from asset_pipeline.hub.state import HubCounters, Outgoing

CLOSE_TRY_AGAIN_LATER = 1013  # the client could not keep up; it may reconnect and resume


@dataclass(eq=False)
class Subscriber:
    websocket: WebSocket
    channel: str
    queue: asyncio.Queue[str]
    max_chars: int = 8 * 1024 * 1024
    queued_chars: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    closing: bool = False
    sender: asyncio.Task | None = None

    def offer(self, text: str) -> bool:
        """Queue one message without waiting; False when the client's queue is full."""
        if self.closing or (self.queued_chars + len(text) > self.max_chars and not self.queue.empty()):
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        self.queued_chars += len(text)
        return True


class Subscribers:
    def __init__(self, counters: HubCounters, queue_size: int, queue_chars: int = 8 * 1024 * 1024):
        self._by_channel: dict[str, set[Subscriber]] = defaultdict(set)
        self._counters = counters
        self._queue_size = queue_size
        self._queue_chars = queue_chars

    def add(self, websocket: WebSocket, channel: str) -> Subscriber:
        subscriber = Subscriber(websocket, channel, asyncio.Queue(maxsize=self._queue_size), self._queue_chars)
        self._by_channel[channel].add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        members = self._by_channel.get(subscriber.channel)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del self._by_channel[subscriber.channel]

    def __iter__(self):
        return (subscriber for members in list(self._by_channel.values()) for subscriber in list(members))

    @property
    def count(self) -> int:
        return sum(len(members) for members in self._by_channel.values())

    def by_channel(self) -> dict[str, int]:
        return {channel: len(members) for channel, members in self._by_channel.items()}

    def fan_out(self, outgoing: Outgoing) -> None:
        for channel in outgoing.channels:
            for subscriber in list(self._by_channel.get(channel, ())):
                if subscriber.offer(outgoing.text):
                    continue
                if not subscriber.closing:
                    self._counters.slow_clients_disconnected += 1
                    self.disconnect(subscriber, CLOSE_TRY_AGAIN_LATER, "too slow: message queue full")
                self._counters.dropped_messages += 1

    def disconnect(self, subscriber: Subscriber, code: int, reason: str) -> None:
        """Stop sending to `subscriber` and close its socket in the background."""
        subscriber.closing = True
        self.remove(subscriber)
        if subscriber.sender is not None:
            subscriber.sender.cancel()  # it may be blocked writing to a client that stopped reading
        asyncio.get_running_loop().create_task(_close(subscriber.websocket, code, reason))


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await asyncio.wait_for(websocket.close(code=code, reason=reason), timeout=5)
    except (TimeoutError, RuntimeError, OSError):
        pass  # already closed by the other side, or it will not read the close frame either
