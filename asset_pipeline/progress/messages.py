"""The hub's wire format, defined once and shared by server, publishers and tests.

Publishers POST `progress` and `run_event` bodies (without `seq`/`timestamp`) to `/api/events`;
the hub stamps each with a hub-wide `seq` and a UTC `timestamp` and sends it to every channel it
concerns. Subscribers also receive `connection`, `snapshot`, `error`, `ping` and `pong`, and may
send `resume`, `ping` and `pong`.

Bodies are parsed by pydantic's own JSON parser (`validate_json`), which bounds nesting depth
(`recursion limit exceeded`), refuses numbers too large for their type and, with
`allow_inf_nan=False`, every NaN / Infinity (`Input should be a finite number`): a browser's
`JSON.parse` accepts none of those, so the hub never stores or sends them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ProgressStatus = Literal["pending", "generating", "completed", "failed", "cached", "skipped"]
RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PARTITION_KEY_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,78}[a-z0-9])?$"  # the catalog's id rule

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
PartitionKey = Annotated[str, Field(pattern=PARTITION_KEY_PATTERN)]
HUB_ID_PATTERN = r"^[0-9a-f]{1,32}$"
MAX_SEQ = 2**53 - 1  # the largest integer a browser's JSON.parse keeps exact
MAX_STEPS = 1_000_000


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProgressEvent(_Message):
    """One image's progress, as a publisher sends it."""

    type: Literal["progress"] = "progress"
    run_id: RunId | None = None
    partition_key: PartitionKey
    status: ProgressStatus
    stage: str | None = Field(default=None, max_length=40)
    current_step: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    total_steps: int | None = Field(default=None, ge=0, le=MAX_STEPS)
    percentage: float | None = Field(default=None, ge=0, le=100)
    elapsed_s: float | None = Field(default=None, ge=0)
    eta_s: float | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    message: str = Field(default="", max_length=2000)
    path: str | None = Field(default=None, max_length=500)
    # issue 16: the provider's adaptive in-flight limit, shared by every run, when this run reported it
    concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)


class RunEvent(_Message):
    """A durable lifecycle record from the Dagster event log (the `run_events_to_hub` sensor)."""

    type: Literal["run_event"] = "run_event"
    event_id: str = Field(max_length=200, description="run id and storage id: the hub drops repeats")
    run_id: RunId
    event_type: str = Field(max_length=80)
    run_status: str | None = Field(default=None, max_length=40)
    job_name: str | None = Field(default=None, max_length=200)
    step_key: str | None = Field(default=None, max_length=200)
    partition_key: PartitionKey | None = None
    asset_key: str | None = Field(default=None, max_length=200)
    check_name: str | None = Field(default=None, max_length=200)
    passed: bool | None = None
    path: str | None = Field(default=None, max_length=500)
    cost_usd: float | None = Field(default=None, ge=0)
    message: str = Field(default="", max_length=2000)
    at: float | None = Field(default=None, description="the event's own time (epoch seconds)")


PublishedEvent = Annotated[ProgressEvent | RunEvent, Field(discriminator="type")]
PUBLISHED: TypeAdapter[ProgressEvent | RunEvent] = TypeAdapter(PublishedEvent)  # type: ignore[arg-type]  # Annotated union
PUBLISHED_BATCH = TypeAdapter(list[PublishedEvent])


class ResumeRequest(_Message):
    """Send what followed `after_seq`; `hub_id` (from `connection`) tells whether that seq is this hub's."""

    type: Literal["resume"]
    after_seq: int = Field(ge=0, le=MAX_SEQ)
    hub_id: str | None = Field(default=None, pattern=HUB_ID_PATTERN)


class ClientPing(_Message):
    type: Literal["ping", "pong"]


ClientMessage = Annotated[ResumeRequest | ClientPing, Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[ResumeRequest | ClientPing] = TypeAdapter(ClientMessage)  # type: ignore[arg-type]


def published_events(body: bytes) -> list[ProgressEvent | RunEvent]:
    """The events of a POST body (one event or a list); raises pydantic's ValidationError."""
    if body.lstrip()[:1] == b"[":
        return PUBLISHED_BATCH.validate_json(body)
    return [PUBLISHED.validate_json(body)]


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(seq: int, body: dict[str, Any]) -> dict[str, Any]:
    """A message as subscribers receive it: the body with `seq` and `timestamp` first."""
    return {"type": body["type"], "seq": seq, "timestamp": utc_timestamp(), **body}


def encode(message: dict[str, Any]) -> str:
    """A message as sent on the wire; refuses NaN and Infinity (`allow_nan=False`) instead of sending them."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
