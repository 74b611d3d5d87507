"""One subscriber's side of the hub protocol, sans I/O: frames in, (texts to send, close?) out.

Like the `websockets` library's `ServerProtocol`, a `HubSession` owns no socket, task or clock: the
server hands it the connection request (`open`), each frame the client sends (`receive`) and each
keep-alive tick (`tick`), and writes whatever `Reply` it returns. So every rule of the protocol is
unit-tested without a network (asset_pipeline_tests/hub/test_session.py):

    open(query, connections)  -> `connection` + `snapshot` | `connection` + replay | gap snapshot
                                 | `error` then close 1008 (bad channel, bad after_seq)
                                 | `error` then close 1013 (the hub is at its connection limit)
    receive(text)             -> `pong` for `ping`; replay for `resume`; `error` for anything else;
                                 close 1009 for a frame over MAX_FRAME_BYTES
    tick(now)                 -> `ping`, or close 1008 after two silent intervals
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from asset_pipeline.hub.state import MONITOR, HubState, partition_channel, run_channel
from asset_pipeline.progress.messages import (
    CLIENT_MESSAGE,
    PARTITION_KEY_PATTERN,
    RUN_ID_PATTERN,
    ResumeRequest,
    encode,
    envelope,
)

MAX_FRAME_BYTES = 64 * 1024
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013  # overloaded (connection limit) or the client could not keep up
_RESUME_QUERY = TypeAdapter(ResumeRequest)
_RUN_ID = re.compile(RUN_ID_PATTERN)
_PARTITION_KEY = re.compile(PARTITION_KEY_PATTERN)
_ERROR_CODES = {"json_invalid": "malformed_json", "union_tag_invalid": "unknown_type",
                "union_tag_not_found": "unknown_type", "model_attributes_type": "unknown_type"}


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True)
class Reply:
    """What the server must do: send `texts` in order, then close when `close` is set."""

    texts: tuple[str, ...] = ()
    close: Close | None = None
    too_many: bool = False  # `texts` is a replay the client's queue cannot hold: close 1013


def channel_for(kind: str, name: str = "") -> tuple[str | None, str]:
    """The channel of a WebSocket path (`monitor`, `runs`, `partitions`), or None and what was invalid."""
    if kind == "monitor":
        return MONITOR, ""
    if kind == "runs":
        return (run_channel(name) if _RUN_ID.match(name) else None), f"run id '{name[:80]}'"
    return (partition_channel(name) if _PARTITION_KEY.match(name) else None), f"partition key '{name[:80]}'"


class HubSession:
    """The protocol state of one subscriber to `channel` (None: the path named no valid channel)."""

    def __init__(self, state: HubState, channel: str | None, what: str = "", *, ping_interval_s: float = 20.0,
                 max_connections: int = 10_000, max_replay: int = 2000, now: float | None = None):
        self.state = state
        self.channel = channel
        self.what = what
        self.ping_interval_s = ping_interval_s
        self.max_connections = max_connections
        self.max_replay = max_replay
        self.last_seen = time.monotonic() if now is None else now

    def open(self, query: Mapping[str, str], *, connections: int) -> Reply:
        """The first messages of a connection; `connections` counts the others already served."""
        if connections >= self.max_connections:
            return self._refuse("too_many_connections", f"the hub serves at most {self.max_connections} connections; "
                                "retry later or connect to another instance", CLOSE_TRY_AGAIN_LATER)
        if self.channel is None:
            return self._refuse("invalid_channel", f"invalid {self.what}")
        resume = None
        if "after_seq" in query:
            try:
                resume = _RESUME_QUERY.validate_python({"type": "resume", **{
                    name: query[name][:40] for name in ("after_seq", "hub_id") if name in query}})
            except ValidationError as exc:
                return self._refuse("invalid", f"{problem(exc)} (after_seq: 0 to 2**53-1, hub_id: hex)")
        hello = self._direct({"type": "connection", "channel": self.channel, "hub_id": self.state.hub_id,
                              "ping_interval_s": self.ping_interval_s})
        if resume is None:
            return Reply((hello, encode(self.state.snapshot(self.channel, connections=connections + 1))))
        return self._resume(resume, connections + 1, first=(hello,))

    def receive(self, text: str, *, connections: int, now: float | None = None) -> Reply:
        """One frame from the client (JSON parsed by pydantic: depth, number size and every field checked)."""
        self.last_seen = time.monotonic() if now is None else now
        if len(text.encode()) > MAX_FRAME_BYTES:
            return Reply(close=Close(CLOSE_TOO_BIG, f"frame over {MAX_FRAME_BYTES} bytes"))
        try:
            message = CLIENT_MESSAGE.validate_json(text)
        except ValidationError as exc:
            code = _ERROR_CODES.get(exc.errors(include_url=False)[0]["type"], "invalid")
            return Reply((self._direct({"type": "error", "code": code, "message":
                                        f"{problem(exc)}; expected resume (after_seq, hub_id), ping or pong"}),))
        if isinstance(message, ResumeRequest):
            return self._resume(message, connections)
        if message.type == "ping":
            return Reply((self._direct({"type": "pong"}),))
        return Reply()

    def tick(self, now: float | None = None) -> Reply:
        """The keep-alive: a `ping`, or a close when nothing came for two intervals."""
        now = time.monotonic() if now is None else now
        if now - self.last_seen > 2 * self.ping_interval_s:
            return Reply(close=Close(CLOSE_POLICY_VIOLATION, "no pong"))
        return Reply((self._direct({"type": "ping"}),))

    def _resume(self, request: ResumeRequest, connections: int, first: tuple[str, ...] = ()) -> Reply:
        assert self.channel is not None
        missed = self.state.replay(self.channel, request.after_seq, request.hub_id)
        if missed is None:
            return Reply((*first, encode(self.state.snapshot(self.channel, connections=connections, gap=True))))
        if len(missed) > self.max_replay:
            return Reply(first, close=Close(CLOSE_TRY_AGAIN_LATER, "too much to resume; reconnect with a snapshot"),
                         too_many=True)
        return Reply((*first, *missed))

    def _direct(self, body: dict[str, Any]) -> str:
        return encode(envelope(self.state.direct_seq(), body))

    def _refuse(self, code: str, message: str, close_code: int = CLOSE_POLICY_VIOLATION) -> Reply:
        """An `error` message, then a close frame."""
        return Reply((self._direct({"type": "error", "code": code, "message": message}),),
                     close=Close(close_code, code))


def problem(exc: ValidationError) -> str:
    """The first problem of a validation error, in one short line (the input is never echoed)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return (f"{where}: " if where else "") + error["msg"][:200]
