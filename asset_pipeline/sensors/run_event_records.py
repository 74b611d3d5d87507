"""Dagster event-log records as hub `run_event` messages, and the sensor's per-run cursor.

The default SQLite event log is sharded per run, so storage ids repeat across runs and one
integer cursor cannot follow them all. The cursor therefore keeps one event-log cursor per run
still being read, plus the newest run update seen so that new and changed runs are found with a
`RunsFilter(updated_after=...)`. The same scheme is correct on PostgreSQL, where ids are global.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from asset_pipeline.progress.messages import RunEvent

FORWARDED = {
    dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING, dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELING,
    dg.DagsterEventType.RUN_CANCELED, dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_RESTARTED,
    dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class RunEventsCursor:
    updated_after: float = 0.0  # epoch seconds of the newest run update already considered
    runs: dict[str, str | None] = field(default_factory=dict)  # run id -> its event-log cursor

    @classmethod
    def parse(cls, text: str | None) -> RunEventsCursor:
        if not text:
            return cls()
        document = json.loads(text)
        return cls(float(document.get("updated_after", 0.0)), dict(document.get("runs", {})))

    def serialize(self) -> str:
        return json.dumps({"updated_after": self.updated_after, "runs": self.runs}, sort_keys=True)

    @property
    def updated_after_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.updated_after, tz=UTC)


def to_run_event(record: dg.EventLogRecord, job_name: str | None) -> RunEvent | None:
    entry = record.event_log_entry
    event = entry.dagster_event
    if event is None:
        return None
    fields: dict[str, Any] = {}
    data = event.event_specific_data
    if event.event_type is dg.DagsterEventType.ASSET_MATERIALIZATION:
        materialization = data.materialization
        metadata = materialization.metadata
        fields.update(asset_key=materialization.asset_key.to_user_string(), partition_key=materialization.partition,
                      path=_value(metadata.get("path")), cost_usd=_value(metadata.get("cost_usd")))
    elif event.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        fields.update(asset_key=data.asset_key.to_user_string(), check_name=data.check_name, passed=data.passed,
                      partition_key=getattr(data, "partition", None))
    if event.event_type is dg.DagsterEventType.STEP_FAILURE and data is not None and getattr(data, "error", None):
        fields["message"] = str(data.error.message)[:2000]
    return RunEvent(
        event_id=f"{entry.run_id}:{record.storage_id}", run_id=entry.run_id, event_type=event.event_type_value,
        job_name=job_name, step_key=event.step_key, at=entry.timestamp,
        message=fields.pop("message", None) or (event.message or "")[:2000],
        **{name: value for name, value in fields.items() if value is not None},
    )


def _value(entry: Any) -> Any:
    value = getattr(entry, "value", entry)
    return value if isinstance(value, (str, int, float)) or value is None else str(value)
