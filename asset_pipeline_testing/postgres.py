"""A throw-away PostgreSQL database per test, on the server the machine runs (see .ci/run)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("ASSET_PIPELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards.

    When the server is unreachable the test is skipped on a developer machine and fails in CI
    (CI=true), where .ci/run has started PostgreSQL.
    """
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a restart
    name = f"asset_pipeline_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        message = f"PostgreSQL at {make_url(SERVER_URL).render_as_string(hide_password=True)} unavailable: {exc.__class__.__name__}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
