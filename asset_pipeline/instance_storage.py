"""PostgreSQL event-log storage for run workers that log many events: pooled connections.

dagster-postgres's event log opens a new connection for every event it stores (a `NullPool`, so
that idle `DagsterInstance`s hold nothing) and asks PostgreSQL whether the asset-check table
exists before every check result. An `images` run stores a materialization and three check
results per image from one thread, so at 10 images a second most of that thread's time went to
connecting. This subclass is the same storage with one kept connection (plus overflow for other
threads), the way dagster-postgres already pools for the webserver (`optimize_for_webserver`):
each checkout is pinged, so a restarted server costs one reconnect, and a table found once is
not looked up again. Nothing else changes; it is selected in `dagster.postgres.yaml` and
`deploy/dagster*.yaml` as `event_log_storage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from asset_pipeline.dagster_internals import ConfigurableClassData

# A kept connection is recycled after this long, so a server-side idle timeout never bites.
POOL_RECYCLE_S = 3600
# Threads beyond the kept connection (the run's image threads read the event log too).
POOL_MAX_OVERFLOW = 8


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider: Any = None):
        self._tables_seen: set[str] = set()
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT", pool_size=1,
            max_overflow=POOL_MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S, pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables_seen:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_seen.add(table_name)
        return found
