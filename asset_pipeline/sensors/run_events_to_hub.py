"""`run_events_to_hub`: the durable lifecycle record of every run, forwarded to the progress hub.

Per-step progress goes from the generator straight to the hub; this sensor (the daemon ticks it
at most every 5 s) forwards run and step lifecycle events, materializations and check results.
Events are sent before the cursor moves, and the cursor moves only when the hub accepted them, so
restarting the daemon neither repeats nor skips; the hub also drops any event id it has seen.
A tick with nothing to forward neither contacts the hub nor logs anything (it ticks every 5 s).
"""

import dagster as dg

from asset_pipeline.errors import HubUnavailable
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.sensors.run_event_records import (
    FINISHED,
    FORWARDED,
    RunEventsCursor,
    to_run_event,
)

MAX_EVENTS_PER_TICK = 2000
MAX_NEW_RUNS_PER_TICK = 100


@dg.sensor(
    name="run_events_to_hub",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Forwards run/step lifecycle events, materializations and check results to the progress hub.",
)
def run_events_to_hub(context: dg.SensorEvaluationContext, progress_hub: ProgressHub) -> dg.SkipReason | None:
    cursor = RunEventsCursor.parse(context.cursor)
    instance = context.instance
    updated = instance.get_run_records(
        filters=dg.RunsFilter(updated_after=cursor.updated_after_datetime), limit=MAX_NEW_RUNS_PER_TICK,
        order_by="update_timestamp", ascending=True,
    )
    runs = {record.dagster_run.run_id: record for record in updated}
    for run_id in cursor.runs.keys() - runs.keys():
        record = instance.get_run_record_by_id(run_id)
        if record is not None:
            runs[run_id] = record
    events, next_cursor = [], RunEventsCursor(cursor.updated_after, {})
    for run_id, record in runs.items():
        budget = MAX_EVENTS_PER_TICK - len(events)
        connection = instance.get_records_for_run(run_id, cursor=cursor.runs.get(run_id), of_type=FORWARDED,
                                                  limit=max(1, budget)) if budget > 0 else None
        if connection is None:
            next_cursor.runs[run_id] = cursor.runs.get(run_id)
            continue
        events += [e for e in (to_run_event(r, record.dagster_run.job_name) for r in connection.records) if e]
        position = connection.cursor if connection.records else cursor.runs.get(run_id)
        if connection.has_more or record.dagster_run.status not in FINISHED:
            next_cursor.runs[run_id] = position
        if record.update_timestamp is not None:
            next_cursor.updated_after = max(next_cursor.updated_after, record.update_timestamp.timestamp())
    if not events:
        context.update_cursor(next_cursor.serialize())
        return None
    try:
        progress_hub.send(events)
    except HubUnavailable as exc:
        return dg.SkipReason(f"{exc}; {len(events)} event(s) will be sent on a later tick")
    context.update_cursor(next_cursor.serialize())
    context.log.info(f"forwarded {len(events)} run event(s) from {len(runs)} run(s) to the hub")
    return None
