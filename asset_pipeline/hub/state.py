"""What the hub knows, with no sockets: sequence numbers, latest state, history and snapshots.

Everything runs on the server's event loop, so accepting an event, numbering it and building a
snapshot are atomic with respect to each other: a snapshot numbered `seq` reflects exactly the
events numbered below it, which is what makes `resume` after a snapshot lossless.

Memory is bounded whatever publishers send: at most `max_partitions` partitions and `max_runs` runs
(see `latest.py`), a fixed history, a fixed set of remembered event ids, a few check results per
partition, and monitor snapshots carrying counts plus only the `snapshot_partitions` most recent
partitions (the rest are paged through `GET /api/partitions`).

Numbering survives restarts: each process starts its `seq` at milliseconds since the epoch × 1000
(a restarted hub continues above its predecessor unless that one published a million events a
second) and has a random `hub_id`. A resume from another `hub_id`, or from a seq this process never
issued, gets a gap snapshot instead of a silent, empty replay.

Shared (several hub processes on one Redis stream, `redis_bus.py`): the stream numbers events, so
`accept` takes the seq and timestamp it was given and `restart_at` starts the process at the
stream's position; messages for one client only (connection, snapshot, ping) carry the seq of the
last event applied instead of a new one, since only the stream may issue numbers.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from asset_pipeline.hub.latest import BoundedLatest
from asset_pipeline.progress.messages import ProgressEvent, RunEvent, encode, envelope

MONITOR = "monitor"
ACTIVE_RUN_STATUSES = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
RUN_STATUS_FOR_EVENT = {
    "PIPELINE_ENQUEUED": "QUEUED", "PIPELINE_STARTING": "STARTING", "PIPELINE_START": "STARTED",
    "PIPELINE_SUCCESS": "SUCCESS", "PIPELINE_FAILURE": "FAILURE", "PIPELINE_CANCELING": "CANCELING",
    "PIPELINE_CANCELED": "CANCELED",
}
FINISHED_PARTITION_STATUSES = {"completed", "failed", "cached", "skipped"}
FINISHED_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
MAX_CHECKS_PER_PARTITION = 20
MAX_ACTIVE_RUNS_IN_SNAPSHOT = 100


def initial_seq() -> int:
    """Where a new hub process starts numbering: milliseconds since the epoch × 1000 (< 2**53 until 2255)."""
    return time.time_ns() // 1_000_000 * 1000


def run_channel(run_id: str) -> str:
    return f"runs/{run_id}"


def partition_channel(partition_key: str) -> str:
    return f"partitions/{partition_key}"


@dataclass(frozen=True)
class Outgoing:
    """An accepted event: its channels and its JSON text, encoded once for every subscriber."""

    seq: int
    channels: tuple[str, ...]
    text: str


@dataclass
class HubCounters:
    events_received: int = 0
    events_delivered: int = 0
    duplicates_ignored: int = 0
    dropped_messages: int = 0
    slow_clients_disconnected: int = 0
    gap_snapshots: int = 0


def finite_only(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (for figures the hub did not validate)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_only(item) for item in value]
    return value


@dataclass
class HubState:
    history_size: int = 10_000
    max_partitions: int = 20_000
    max_runs: int = 1_000
    snapshot_partitions: int = 1_000
    seq: int = field(default_factory=initial_seq)
    hub_id: str = field(default_factory=lambda: secrets.token_hex(8))
    spend: dict[str, Any] | None = None
    counters: HubCounters = field(default_factory=HubCounters)
    shared: bool = False

    def __post_init__(self) -> None:
        self.partitions = BoundedLatest(
            self.max_partitions, lambda key: {"partition_key": key, "status": "pending"},
            lambda entry: entry.get("status") in FINISHED_PARTITION_STATUSES)
        self.runs = BoundedLatest(self.max_runs, lambda run_id: {"run_id": run_id},
                                  lambda entry: entry.get("status") in FINISHED_RUN_STATUSES)
        self._history: deque[Outgoing] = deque(maxlen=self.history_size)
        self._seen_event_ids: OrderedDict[str, None] = OrderedDict()
        self.first_seq = self.seq  # seqs at or below this one were never issued by this process
        self._forgotten_up_to = self.seq  # seq of the newest event pushed out of the history

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def direct_seq(self) -> int:
        """The seq of a message for one client: a new one, or when shared the last event's."""
        return self.seq if self.shared else self.next_seq()

    def restart_at(self, seq: int, hub_id: str) -> None:
        """Join a shared stream: numbering and the history start at `seq` (issued by the stream)."""
        self.shared = True
        self.hub_id = hub_id
        self.seq = self.first_seq = self._forgotten_up_to = seq
        self._history.clear()

    def accept(self, event: ProgressEvent | RunEvent, *, seq: int | None = None,
               timestamp: str | None = None) -> Outgoing | None:
        """Number, remember and encode one published event; None for a run event already seen.
        A `seq` (and `timestamp`) given by the shared stream is used as is; the stream deduplicates."""
        self.counters.events_received += 1
        if seq is not None:
            if seq <= self.seq:
                return None  # already applied (read twice around a reconnect)
            self.seq = seq - 1
        elif isinstance(event, RunEvent):
            if event.event_id in self._seen_event_ids:
                self.counters.duplicates_ignored += 1
                return None
            self._seen_event_ids[event.event_id] = None
            if len(self._seen_event_ids) > 10 * self.history_size:
                self._seen_event_ids.popitem(last=False)
        body = event.model_dump()  # every field, null when unknown: subscribers see one stable shape
        message = envelope(self.next_seq(), body)
        if timestamp is not None:
            message["timestamp"] = timestamp
        self._apply(event, message)
        channels = [MONITOR]
        if event.run_id:
            channels.append(run_channel(event.run_id))
        if event.partition_key:
            channels.append(partition_channel(event.partition_key))
        outgoing = Outgoing(message["seq"], tuple(channels), encode(message))
        if len(self._history) == self._history.maxlen:
            self._forgotten_up_to = self._history[0].seq
        self._history.append(outgoing)
        return outgoing

    def history(self) -> list[str]:
        """The remembered messages, oldest first."""
        return [item.text for item in self._history]

    def replay(self, channel: str, after_seq: int, hub_id: str | None = None) -> list[str] | None:
        """Every remembered message for `channel` after `after_seq`; None when some may be missing:
        forgotten, from another hub process, or a seq this process has not issued."""
        if (hub_id is not None and hub_id != self.hub_id) or not self._forgotten_up_to <= after_seq <= self.seq:
            return None
        return [item.text for item in self._history if item.seq > after_seq and channel in item.channels]

    def snapshot(self, channel: str, *, connections: int, gap: bool = False) -> dict[str, Any]:
        """The latest state for `channel`, bounded: at most `snapshot_partitions` partitions, most recent."""
        if gap:
            self.counters.gap_snapshots += 1
        body: dict[str, Any] = {"type": "snapshot", "channel": channel, "gap": gap, "hub_id": self.hub_id}
        if channel == MONITOR:
            active = [run_id for run_id, run in self.runs.items() if run.get("status") in ACTIVE_RUN_STATUSES]
            body.update(
                partitions=self.partitions.recent(self.snapshot_partitions),
                partitions_total=len(self.partitions),
                counts=dict(Counter(entry["status"] for entry in self.partitions.values())),
                runs=sorted(self.runs.values(), key=lambda run: run.get("updated_at") or "", reverse=True)[:50],
                active_runs=active[-MAX_ACTIVE_RUNS_IN_SNAPSHOT:],
                spend=self.spend, connections=connections,
            )
        elif channel.startswith("runs/"):
            run_id = channel.removeprefix("runs/")
            of_run = [entry for entry in self.partitions.values() if entry.get("run_id") == run_id]
            body.update(run=self.runs.get(run_id), partitions=of_run[-self.snapshot_partitions:],
                        partitions_total=len(of_run))
        else:
            body.update(partition=self.partitions.get(channel.removeprefix("partitions/")))
        return envelope(self.direct_seq(), body)

    def remember_partition(self, partition_key: str, **fields: Any) -> None:
        """Seed or update one partition's latest state (also used to rebuild after a restart)."""
        self.partitions.update(partition_key, fields)

    def remember_run(self, run_id: str, **fields: Any) -> None:
        self.runs.update(run_id, fields)

    def _apply(self, event: ProgressEvent | RunEvent, message: dict[str, Any]) -> None:
        if isinstance(event, ProgressEvent):
            fields = {k: v for k, v in message.items() if k not in ("type", "seq", "partition_key")}
            self.remember_partition(event.partition_key, **fields)
            if event.run_id:
                self.remember_run(event.run_id, updated_at=message["timestamp"])
            return
        status = RUN_STATUS_FOR_EVENT.get(event.event_type)
        self.remember_run(event.run_id, status=status, job_name=event.job_name, updated_at=message["timestamp"])
        # A `prompts` materialization comes before its image is made: it must not mark the partition done.
        if event.partition_key and event.event_type == "ASSET_MATERIALIZATION" and event.asset_key != "prompts":
            self.remember_partition(event.partition_key, status="completed", run_id=event.run_id, path=event.path,
                                    cost_usd=event.cost_usd, percentage=100.0, timestamp=message["timestamp"])
        elif event.partition_key and event.event_type == "ASSET_CHECK_EVALUATION" and event.check_name:
            checks = dict(self.partitions.get(event.partition_key, {}).get("checks") or {})
            checks.pop(event.check_name, None)
            checks[event.check_name] = event.passed
            while len(checks) > MAX_CHECKS_PER_PARTITION:  # the oldest check result goes first
                del checks[next(iter(checks))]
            self.partitions.update(event.partition_key, {"checks": checks})
