"""Engines and the one exclusive transaction that makes reservations atomic across processes.

SQLite: every ledger transaction starts with `BEGIN IMMEDIATE`, which takes the database's write
lock up front, so two processes cannot both read the totals and then both insert. PostgreSQL: the
reservation transaction takes a transaction-scoped advisory lock first, with the same effect.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, select, text
from sqlalchemy.engine import make_url

from asset_pipeline.ledger.schema import metadata

# Arbitrary constant naming the ledger's advisory lock in PostgreSQL.
_ADVISORY_LOCK_KEY = 0x61737365745F70  # "asset_p"
_SCOPED_LOCK_SPACE = 0x61737365  # "asse": the first half of the scoped locks' two-integer keys


def ledger_engine(url: str) -> Engine:
    """An engine for `url`, with tables created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
            dbapi_connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection):  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = create_engine(url, pool_pre_ping=True)
    with exclusive(engine) as connection:  # several processes may start on an empty database at once
        metadata.create_all(connection)
    return engine


@contextmanager
def exclusive(engine: Engine, scope: str | None = None) -> Iterator[Connection]:
    """A transaction no other `exclusive` transaction of the same scope (any process) runs beside.

    Without a scope it is the money lock every cap check takes (reservations). A scope, such as
    one reservation or one provider's circuit, serialises only the transactions about that one
    thing, so closing reservations never queues behind other runs' cap checks. Plain appends (the
    journal, the attempt log, the request index) need no lock. On SQLite every write transaction
    is exclusive anyway (BEGIN IMMEDIATE).
    """
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            if scope is None:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            else:  # the two-integer key space never overlaps the one-bigint key space above
                connection.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"),
                                   {"space": _SCOPED_LOCK_SPACE, "key": zlib.crc32(scope.encode()) - 2**31})
        yield connection


def history_rows(engine: Engine, table: Table, **equal: Any) -> list[dict[str, Any]]:
    """Every row of an append-only `table`, oldest first; keyword arguments not None filter by column."""
    query = select(table).order_by(table.c.id)
    for column, value in equal.items():
        if value is not None:
            query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings().all()]


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every ledger time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
