"""Subscribers and fan-out: a message is framed once and the same bytes go to every subscriber.

Under `BroadcastProtocol` (what `asset-pipeline hub` runs) a subscriber is written to directly,
without awaiting, as `websockets.broadcast` does; a client whose socket buffer holds more than
`max_chars` bytes, or more than `queue_size` messages written since it was last empty, is cut
off (1013: it may reconnect and resume). Under any other ASGI server a subscriber gets a bounded
queue drained by its own task, with the same two bounds. Either way a slow client never slows
the others and never holds more than its bound of the hub's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from websockets.frames import Frame, Opcode

from asset_pipeline.hub.session import CLOSE_TRY_AGAIN_LATER, Close, HubSession, Reply
from asset_pipeline.hub.state import HubCounters, Outgoing

WriteFrame = Callable[[bytes], "int | None"]


def frame(text: str) -> bytes:
    """`text` as one unmasked WebSocket text frame (a server's), ready for any subscriber's socket."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


@dataclass(eq=False)
class Subscriber:
    websocket: Any  # a Starlette WebSocket (for the close, and the queued fallback)
    session: HubSession
    write: WriteFrame | None = None  # BroadcastProtocol's direct write, when served by it
    queue_size: int = 2000
    max_chars: int = 8 * 1024 * 1024
    queue: asyncio.Queue[str] | None = None
    queued_chars: int = 0
    unflushed: int = 0  # direct writes since the socket buffer was last seen empty
    closing: bool = False
    gone: bool = False  # the socket closed under us: not a slow client, just remove it
    sender: asyncio.Task | None = None

    @property
    def channel(self) -> str:
        assert self.session.channel is not None
        return self.session.channel

    @property
    def last_seen(self) -> float:
        return self.session.last_seen

    def offer(self, text: str, framed: bytes | None = None) -> bool:
        """Send or queue one message without waiting; False when the client is past its bounds."""
        if self.closing:
            return False
        if self.write is not None:
            buffered = self.write(framed if framed is not None else frame(text))
            if buffered is None:
                self.gone = True
                return False
            self.unflushed = self.unflushed + 1 if buffered else 0
            return buffered <= self.max_chars and self.unflushed <= self.queue_size
        assert self.queue is not None
        if self.queued_chars + len(text) > self.max_chars and not self.queue.empty():
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        self.queued_chars += len(text)
        return True

    async def drain(self, counters: HubCounters) -> None:
        """The queued fallback's sender task."""
        assert self.queue is not None
        with contextlib.suppress(RuntimeError, OSError, asyncio.CancelledError, Exception):
            while True:
                text = await self.queue.get()
                self.queued_chars -= len(text)
                await self.websocket.send_text(text)
                counters.events_delivered += 1


class Subscribers:
    def __init__(self, counters: HubCounters, queue_size: int, queue_chars: int = 8 * 1024 * 1024):
        self._by_channel: dict[str, set[Subscriber]] = defaultdict(set)
        self._counters = counters
        self._queue_size = queue_size
        self._queue_chars = queue_chars
        self.pending = 0  # connections accepted but not yet added: they count against the limit

    def add(self, websocket: Any, session: HubSession, write: WriteFrame | None) -> Subscriber:
        subscriber = Subscriber(websocket, session, write, self._queue_size, self._queue_chars)
        if write is None:
            subscriber.queue = asyncio.Queue(maxsize=self._queue_size)
            subscriber.sender = asyncio.get_running_loop().create_task(subscriber.drain(self._counters))
        self._by_channel[subscriber.channel].add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        members = self._by_channel.get(subscriber.channel)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del self._by_channel[subscriber.channel]
        if subscriber.sender is not None:
            subscriber.sender.cancel()

    def __iter__(self) -> Iterator[Subscriber]:
        return (subscriber for members in list(self._by_channel.values()) for subscriber in list(members))

    @property
    def count(self) -> int:
        return sum(len(members) for members in self._by_channel.values())

    def by_channel(self) -> dict[str, int]:
        return {channel: len(members) for channel, members in self._by_channel.items()}

    def fan_out(self, outgoing: Outgoing) -> None:
        framed = frame(outgoing.text)  # once, for every subscriber of every channel
        delivered = 0
        for channel in outgoing.channels:
            for subscriber in list(self._by_channel.get(channel, ())):
                if subscriber.offer(outgoing.text, framed):
                    delivered += subscriber.write is not None
                    continue
                self._too_slow(subscriber)
        self._counters.events_delivered += delivered

    def apply(self, subscriber: Subscriber, reply: Reply) -> None:
        """Carry out a session's reply: send its texts in order, then close if it says so."""
        for text in reply.texts:
            if not subscriber.offer(text):
                self._too_slow(subscriber)
                return
            self._counters.events_delivered += subscriber.write is not None
        if reply.close is not None:
            if reply.too_many:
                self._counters.slow_clients_disconnected += 1
            self.disconnect(subscriber, reply.close.code, reply.close.reason)

    def _too_slow(self, subscriber: Subscriber) -> None:
        if subscriber.gone:  # closed by the client before its handler noticed: nothing was dropped
            subscriber.closing = True
            self.remove(subscriber)
            return
        if not subscriber.closing:
            self._counters.slow_clients_disconnected += 1
            self.disconnect(subscriber, CLOSE_TRY_AGAIN_LATER, "too slow: message queue full")
        self._counters.dropped_messages += 1

    def disconnect(self, subscriber: Subscriber, code: int, reason: str) -> None:
        """Stop sending to `subscriber` and close its socket in the background."""
        subscriber.closing = True
        self.remove(subscriber)
        asyncio.get_running_loop().create_task(close_socket(subscriber.websocket, Close(code, reason)))

    def tick(self, now: float | None = None) -> None:
        """Every subscriber's keep-alive."""
        now = time.monotonic() if now is None else now
        for subscriber in self:
            self.apply(subscriber, subscriber.session.tick(now))


async def close_socket(websocket: Any, close: Close) -> None:
    try:
        await asyncio.wait_for(websocket.close(code=close.code, reason=close.reason), timeout=5)
    except (TimeoutError, RuntimeError, OSError):
        pass  # already closed by the other side, or it will not read the close frame either
