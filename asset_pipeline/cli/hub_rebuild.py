"""Rebuild the hub's latest state after a restart: partitions and runs from the Dagster instance,
spend from the ledger. Events are not replayed; new ones resume numbering from here."""

from __future__ import annotations

from typing import Any

import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.hub.state import HubState
from asset_pipeline.partition_status import partition_statuses

_STATUS = {"materialized": "completed", "failed": "failed", "in_progress": "generating"}


def rebuild_from_instance(state: HubState, instance: dg.DagsterInstance, partition_keys: list[str],
                          *, recent_runs: int = 50) -> None:
    statuses = partition_statuses(instance, IMAGES, dg.StaticPartitionsDefinition(partition_keys))
    for key in partition_keys:
        status = statuses.status_of(key)
        if status != "missing":
            state.remember_partition(key, status=_STATUS[status])
    for run in instance.get_run_records(limit=recent_runs):
        state.remember_run(
            run.dagster_run.run_id, status=run.dagster_run.status.value, job_name=run.dagster_run.job_name,
            updated_at=run.update_timestamp.isoformat() if run.update_timestamp else None,
        )


def ledger_spend(database_url: str, caps: Any) -> dict[str, Any]:
    """Spend against the caps, as the dashboard shows it."""
    from asset_pipeline.ledger.budget_ledger import BudgetLedger
    from asset_pipeline.ledger.database import ledger_engine

    status = BudgetLedger(ledger_engine(database_url)).status(caps)
    return {
        "spent_total_usd": status.spent_total_usd, "spent_today_usd": status.spent_today_usd,
        "reserved_usd": status.reserved_usd, "cap_total_usd": caps.total_usd, "cap_daily_usd": caps.daily_usd,
        "open_reservations": status.open_reservations,
    }
