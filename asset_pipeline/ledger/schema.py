"""Ledger tables. Rows are only ever inserted: history is the point."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()


def _work_columns() -> list[Column]:
    """Which image a row is about: the run, the partition, the request and the model."""
    return [
        Column("run_id", String(64), nullable=False),
        Column("partition_key", String(128), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("model", String(200), nullable=False),
    ]

# kind: 'reservation' (money set aside before a provider call), 'charge' (what was really spent,
# closing the reservation), 'release' (the reservation returned unspent).
budget_entries = Table(
    "budget_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("reservation_id", String(36), nullable=False),
    *_work_columns(),
    Column("prediction_id", String(128)),
    Column("amount_micros", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("day", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_budget_entries_reservation", "reservation_id"),
    Index("ix_budget_entries_run", "run_id"),
    Index("ix_budget_entries_day", "day"),
)

# One row per state change of a provider prediction; the newest row per prediction is its state.
prediction_journal = Table(
    "prediction_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(128), nullable=False),
    Column("reservation_id", String(36), nullable=False),
    *_work_columns(),
    Column("status", String(32), nullable=False),
    Column("detail", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_prediction_journal_request", "request_hash"),
    Index("ix_prediction_journal_prediction", "prediction_id"),
)

# Request hash -> the image it produced and what it cost: the paid-request index.
request_index = Table(
    "request_index",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_hash", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("partition_key", String(128), nullable=False),
    Column("model", String(200), nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_request_index_request", "request_hash"),
)

# Circuit-breaker events per provider: success, failure, open, trial, close (see ledger/circuit.py).
circuit_events = Table(
    "circuit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_circuit_events_provider", "provider", "id"),
)

# Every generation attempt that failed: its class and the strategy chosen next.
generation_attempts = Table(
    "generation_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_work_columns(),
    Column("attempt", Integer, nullable=False),
    Column("failure_class", String(32), nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_generation_attempts_run", "run_id"),
)

# The caps each run used, recorded when it starts: the hub and the commands read the latest row
# instead of their own environment (see ledger/recorded_caps.py).
run_caps = Table(
    "run_caps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    Column("daily_micros", BigInteger, nullable=False),
    Column("per_run_micros", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- issue 16: provider limits shared by every run (see asset_pipeline/limits/) -------------------
# Unlike the history above, these two hold live state and are updated in place.
# One row per provider: the GCRA's theoretical arrival time (epoch seconds) for the create rate, and
# the adaptive concurrency limit (AIMD state).
provider_limits = Table(
    "provider_limits",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("rate_tat", Float, nullable=False, default=0.0),
    Column("concurrency_limit", Float, nullable=True),
    Column("baseline_s", Float, nullable=True),
    Column("last_decrease_at", Float, nullable=True),
)

# Requests in flight at a provider, one lease per request; a crashed process's leases expire.
provider_slots = Table(
    "provider_slots",
    metadata,
    Column("holder", String(64), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_provider_slots_key", "key", "expires_at"),
)

# Review loop (ledger/reviews.py): one row per verdict on one exact image (its sha256) of a
# partition: 'approved' or 'rejected', with an optional note and text to append to the next take's
# prompt. The newest row per (partition, sha256) is that image's state; an image never reviewed,
# or a partition whose image was replaced since, is unreviewed.
reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partition_key", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("note", Text, nullable=False),
    Column("prompt_addition", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_reviews_partition", "partition_key", "id"),
)
