"""What the hub knows, with no sockets: sequence numbers, latest state, history and snapshots.

Everything runs on the server's event loop, so accepting an event, numbering it and building a
snapshot are atomic with respect to each other: a snapshot numbered `seq` reflects exactly the
events numbered below it, which is what makes `resume` after a snapshot lossless.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from asset_pipeline.hub.messages import ProgressEvent, RunEvent, envelope

MONITOR = "monitor"
ACTIVE_RUN_STATUSES = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
RUN_STATUS_FOR_EVENT = {
    "PIPELINE_ENQUEUED": "QUEUED", "PIPELINE_STARTING": "STARTING", "PIPELINE_START": "STARTED",
    "PIPELINE_SUCCESS": "SUCCESS", "PIPELINE_FAILURE": "FAILURE", "PIPELINE_CANCELING": "CANCELING",
    "PIPELINE_CANCELED": "CANCELED",
}


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


@dataclass
class HubState:
    history_size: int = 10_000
    seq: int = 0
    partitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    spend: dict[str, Any] | None = None
    counters: HubCounters = field(default_factory=HubCounters)

    def __post_init__(self) -> None:
        self._history: deque[Outgoing] = deque(maxlen=self.history_size)
        self._seen_event_ids: OrderedDict[str, None] = OrderedDict()
        self._forgotten_up_to = 0  # seq of the newest event pushed out of the history

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def accept(self, event: ProgressEvent | RunEvent) -> Outgoing | None:
        """Number, remember and encode one published event; None for a run event already seen."""
        self.counters.events_received += 1
        if isinstance(event, RunEvent):
            if event.event_id in self._seen_event_ids:
                self.counters.duplicates_ignored += 1
                return None
            self._seen_event_ids[event.event_id] = None
            if len(self._seen_event_ids) > 10 * self.history_size:
                self._seen_event_ids.popitem(last=False)
        body = event.model_dump()  # every field, null when unknown: subscribers see one stable shape
        message = envelope(self.next_seq(), body)
        self._apply(event, message)
        channels = [MONITOR]
        if event.run_id:
            channels.append(run_channel(event.run_id))
        if event.partition_key:
            channels.append(partition_channel(event.partition_key))
        outgoing = Outgoing(message["seq"], tuple(channels), json.dumps(message, separators=(",", ":")))
        if len(self._history) == self._history.maxlen:
            self._forgotten_up_to = self._history[0].seq
        self._history.append(outgoing)
        return outgoing

    def history(self) -> list[str]:
        """The remembered messages, oldest first."""
        return [item.text for item in self._history]

    def replay(self, channel: str, after_seq: int) -> list[str] | None:
        """Every remembered message for `channel` after `after_seq`, or None if some were forgotten."""
        if after_seq < self._forgotten_up_to:
            return None
        return [item.text for item in self._history if item.seq > after_seq and channel in item.channels]

    def snapshot(self, channel: str, *, connections: int, gap: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "snapshot", "channel": channel, "gap": gap}
        if channel == MONITOR:
            body.update(
                partitions=list(self.partitions.values()),
                counts=dict(Counter(entry["status"] for entry in self.partitions.values())),
                runs=sorted(self.runs.values(), key=lambda run: run.get("updated_at") or "", reverse=True)[:50],
                active_runs=[run_id for run_id, run in self.runs.items() if run.get("status") in ACTIVE_RUN_STATUSES],
                spend=self.spend, connections=connections,
            )
        elif channel.startswith("runs/"):
            run_id = channel.removeprefix("runs/")
            body.update(run=self.runs.get(run_id),
                        partitions=[entry for entry in self.partitions.values() if entry.get("run_id") == run_id])
        else:
            body.update(partition=self.partitions.get(channel.removeprefix("partitions/")))
        return envelope(self.next_seq(), body)

    def remember_partition(self, partition_key: str, **fields: Any) -> None:
        """Seed or update one partition's latest state (also used to rebuild after a restart)."""
        entry = self.partitions.setdefault(partition_key, {"partition_key": partition_key, "status": "pending"})
        entry.update({name: value for name, value in fields.items() if value is not None})

    def remember_run(self, run_id: str, **fields: Any) -> None:
        entry = self.runs.setdefault(run_id, {"run_id": run_id})
        entry.update({name: value for name, value in fields.items() if value is not None})

    def _apply(self, event: ProgressEvent | RunEvent, message: dict[str, Any]) -> None:
        if isinstance(event, ProgressEvent):
            fields = {k: v for k, v in message.items() if k not in ("type", "seq", "partition_key")}
            self.remember_partition(event.partition_key, **fields)
            if event.run_id:
                self.remember_run(event.run_id, updated_at=message["timestamp"])
            return
        status = RUN_STATUS_FOR_EVENT.get(event.event_type)
        self.remember_run(event.run_id, status=status, job_name=event.job_name, updated_at=message["timestamp"])
        if event.partition_key and event.event_type == "ASSET_MATERIALIZATION":
            self.remember_partition(event.partition_key, status="completed", run_id=event.run_id, path=event.path,
                                    cost_usd=event.cost_usd, percentage=100.0, timestamp=message["timestamp"])
        elif event.partition_key and event.event_type == "ASSET_CHECK_EVALUATION" and event.check_name:
            entry = self.partitions.setdefault(event.partition_key,
                                               {"partition_key": event.partition_key, "status": "pending"})
            entry.setdefault("checks", {})[event.check_name] = event.passed
