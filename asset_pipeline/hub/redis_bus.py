"""Several hub processes acting as one, through one Redis stream (`ASSET_PIPELINE_REDIS_URL`).

A publisher's POST reaches any instance; that instance appends the events to one Redis Stream in
a single Lua script that also deduplicates run events (SET NX with a TTL) and numbers each event
with one shared counter (INCR), so the stream's order is the one order and its `seq` field the one
sequence. Every instance, the publishing one included, applies the stream with one reader task
(XREAD BLOCK) and fans each entry out to its own subscribers; the stream is trimmed to about the
history size (XADD MAXLEN ~), so an instance started later loads the same bounded history
(XRANGE) and a client that reconnects to another instance resumes with `after_seq` from it. The
`hub_id` is shared too (SET NX at first start), so every instance vouches for the same seqs.

Streams, not pub/sub: pub/sub drops whatever is sent while a reader reconnects, and carries no
history to resume from. Keys live under `prefix` (ASSET_PIPELINE_HUB_REDIS_PREFIX); the script
touches keys it does not declare, so it needs a single Redis (or primary), not Redis Cluster.
The URL may hold a password: only `redacted(url)` is ever printed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.hub.state import HubState, Outgoing
from asset_pipeline.progress.messages import MAX_SEQ, PUBLISHED, ProgressEvent, RunEvent, utc_timestamp

REDIS_URL_VARIABLE = "ASSET_PIPELINE_REDIS_URL"
DEDUPE_TTL_S = 7 * 24 * 3600  # a run event id is remembered this long (the sensor re-sends within minutes)
RESUME_WAIT_S = 2.0  # how long a resume waits for this instance to read a seq another one issued
_LOG = logging.getLogger("asset_pipeline.hub")

_APPEND = """
local out = {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if id ~= '' and not redis.call('SET', ARGV[3] .. id, '1', 'NX', 'EX', ARGV[4]) then
    out[#out + 1] = 0
  else
    local seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, 'ts', ARGV[2], 'body', ARGV[i + 1])
    out[#out + 1] = seq
  end
end
return out
"""


def redacted(url: str) -> str:
    """`url` with any password replaced by `***` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "(unparsable URL)"


def _scrubbed(text: str, url: str) -> str:
    password = None
    try:
        password = urlsplit(url).password
    except ValueError:
        pass
    return text.replace(password, "***") if password else text


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    """Ping Redis once before serving; ConfigurationError names the variable, never the password."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        detail = _scrubbed(str(exc), url)[:200]
        raise ConfigurationError(REDIS_URL_VARIABLE, f"cannot use Redis at {redacted(url)} "
                                 f"({exc.__class__.__name__}: {detail}); the hub shares its events through it") from None


class RedisBus:
    def __init__(self, url: str, *, prefix: str = "asset_pipeline:hub", history_size: int = 10_000,
                 block_ms: int = 1000):
        self.url = url
        self.stream = f"{prefix}:events"
        self.seq_key = f"{prefix}:seq"
        self.id_key = f"{prefix}:hub_id"
        self.dedupe_prefix = f"{prefix}:event:"
        self.history_size = history_size
        self.block_ms = block_ms
        self.last_id: bytes | str = "0-0"
        self.redis: Any = None
        self._advanced = asyncio.Event()
        self._append: Any = None

    async def start(self, state: HubState) -> None:
        """Connect, share the hub id, and load the stream's history into `state`."""
        self.redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=5)
        self._append = self.redis.register_script(_APPEND)
        await self.redis.set(self.id_key, secrets.token_hex(8), nx=True)
        hub_id = (await self.redis.get(self.id_key)).decode()
        entries = await self.redis.xrange(self.stream)
        seqs = [int(fields[b"seq"]) for _id, fields in entries if fields.get(b"seq", b"").isdigit()]
        start = min(seqs) - 1 if seqs else int(await self.redis.get(self.seq_key) or 0)
        state.restart_at(start, hub_id)
        for entry_id, fields in entries:
            self._apply(state, fields)
            self.last_id = entry_id

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def publish(self, events: list[ProgressEvent | RunEvent]) -> dict[str, int]:
        """Append `events` to the stream (one round trip); they reach subscribers through `run`."""
        arguments: list[Any] = [self.history_size, utc_timestamp(), self.dedupe_prefix, DEDUPE_TTL_S]
        for event in events:
            arguments += [event.event_id if isinstance(event, RunEvent) else "", event.model_dump_json()]
        seqs = [int(seq) for seq in await self._append(keys=[self.stream, self.seq_key], args=arguments)]
        accepted = [seq for seq in seqs if seq]
        return {"accepted": len(accepted), "duplicates": len(seqs) - len(accepted), "seq": max(accepted, default=0)}

    async def run(self, state: HubState, deliver: Callable[[Outgoing], None]) -> None:
        """The reader: apply every new stream entry to `state` and hand it to `deliver`, in order."""
        failing = False
        while True:
            try:
                response = await self.redis.xread({self.stream: self.last_id}, block=self.block_ms, count=1000)
            except (redis.RedisError, OSError) as exc:
                if not failing:
                    _LOG.warning("hub: lost Redis (%s); retrying every second", exc.__class__.__name__)
                failing = True
                await asyncio.sleep(1)
                continue
            failing = False
            for _stream, entries in response or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    outgoing = self._apply(state, fields)
                    if outgoing is not None:
                        deliver(outgoing)
            self._advanced.set()
            self._advanced = asyncio.Event()

    async def caught_up(self, state: HubState, seq: int, timeout_s: float = RESUME_WAIT_S) -> None:
        """Wait (bounded) until this instance has applied `seq`, which another instance may have issued."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while state.seq < seq:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return

    def _apply(self, state: HubState, fields: dict[bytes, bytes]) -> Outgoing | None:
        """One stream entry applied to `state`; an entry this code did not write is skipped, logged."""
        try:
            seq = int(fields[b"seq"])
            event = PUBLISHED.validate_json(fields[b"body"])
            timestamp = fields[b"ts"].decode("ascii")[:40]
        except (KeyError, ValueError, UnicodeDecodeError) as exc:  # pydantic's ValidationError is a ValueError
            _LOG.warning("hub: skipped a malformed entry in the event stream (%s)", exc.__class__.__name__)
            return None
        if not 0 < seq <= MAX_SEQ:
            _LOG.warning("hub: skipped an event stream entry with an out-of-range seq")
            return None
        if seq > state.seq + 1:  # trimmed away while this reader was cut off
            _LOG.warning("hub: %d event(s) were trimmed from the stream before this instance read them",
                         seq - state.seq - 1)
            state.restart_at(seq - 1, state.hub_id)
        return state.accept(event, seq=seq, timestamp=timestamp)
