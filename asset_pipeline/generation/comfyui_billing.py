"""GPU seconds of a finished ComfyUI job, read from its history entry and checked. Pure logic.

ComfyUI stamps `execution_start` and the final `execution_success` / `execution_error` /
`execution_interrupted` message with milliseconds since the epoch. Those stamps are the server's
own timing and are used when they make sense; garbage (missing, a string, NaN, negative, weeks
away from our clock, longer than the job may run) is replaced by what we observed on the event stream, clamped to the longest
job, and the bill says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

FINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")
# A stamp further than this from our clock is garbage (a server clock may drift, not by weeks).
PLAUSIBLE_SKEW_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class GpuTime:
    seconds: float
    note: str | None = None  # why this is not simply the server's own timing


def status_messages(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entry's status messages by kind (the last of each kind)."""
    status = entry.get("status")
    messages = status.get("messages") if isinstance(status, dict) else None
    found: dict[str, dict[str, Any]] = {}
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, list) and len(message) == 2 and isinstance(message[0], str) and isinstance(message[1], dict):
            found[message[0]] = message[1]
    return found


def gpu_time(entry: dict[str, Any] | None, *, observed_s: float | None, max_job_seconds: float) -> GpuTime:
    """GPU seconds to charge for a job: the server's stamps when sane, else `observed_s`, in [0, max]."""
    if entry is not None:
        messages = status_messages(entry)
        start = _stamp(messages.get("execution_start"))
        end = next((stamp for kind in FINAL_EVENTS if (stamp := _stamp(messages.get(kind))) is not None), None)
        if start is not None and end is not None:
            seconds = (end - start) / 1000.0
            if 0.0 <= seconds <= max_job_seconds:
                return GpuTime(seconds)
            if max_job_seconds < seconds <= max_job_seconds + 60.0:  # it was stopped for running over
                return GpuTime(max_job_seconds, f"ran {seconds:.1f} s, past the longest job; its reservation is charged")
    if observed_s is None or not math.isfinite(observed_s):
        return GpuTime(0.0, "ComfyUI gave no usable timing and the job was not seen running; nothing is charged")
    return GpuTime(min(max(0.0, observed_s), max_job_seconds),
                   "ComfyUI's own timing was unusable; the GPU time seen on its event stream is charged")


def _stamp(data: dict[str, Any] | None) -> float | None:
    value = data.get("timestamp") if data else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if abs(value - time.time() * 1000) > PLAUSIBLE_SKEW_MS:
        return None
    return float(value)
