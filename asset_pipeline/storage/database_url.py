"""Ledger database URLs: which ones the ledger supports, and how to show one without its password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_EXPECTED = "expected sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


def check_database_url(url: str) -> str:
    """Return `url` if the ledger can run on it; else raise `ValueError` with a reason that never
    contains the URL's password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL ({_EXPECTED})") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"unsupported database '{backend}' in {shown_url(parsed)}; the ledger runs on SQLite or PostgreSQL ({_EXPECTED})")
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError, AttributeError):
        raise ValueError(f"no installed driver for {parsed.drivername} in {shown_url(parsed)}") from None
    return url


def shown_url(url: str | URL) -> str:
    """`url` with its password masked (`***`), safe for messages and logs."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)
