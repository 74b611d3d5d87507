"""Configuration mistakes around Replicate, named in one line each (pure: no I/O).

The official client reads `REPLICATE_BASE_URL` itself and appends `/v1/...` to it, so a base URL
that already ends in `/v1` calls `/v1/v1/...` and every request gets a bare 404. That is checked
when the backend is built; a wrong token (401), a base URL that is not the API's root (404 on an
endpoint) and an unreachable host are recognised on the first call and explained there.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from asset_pipeline.errors import ConfigurationError

DEFAULT_BASE_URL = "https://api.replicate.com"
_ABOUT_A_MODEL = re.compile(r"model|version|prediction|file", re.IGNORECASE)


def base_url() -> str:
    """The base URL the official client will use (it reads the same variable)."""
    return os.environ.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL


def shown_url(url: str) -> str:
    """`url` without any user:password part, safe for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_base_url(url: str) -> None:
    """Refuse a base URL the client cannot use; the message says what to set instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("REPLICATE_BASE_URL", f"'{shown_url(url)}' is not an http(s) URL; "
                                 f"unset it to use {DEFAULT_BASE_URL}")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        fixed = shown_url(url).rstrip("/")[: -len("/v1")]
        raise ConfigurationError("REPLICATE_BASE_URL", f"'{shown_url(url)}' ends in /v1, but the client adds /v1 "
                                 f"itself (it would call /v1/v1/...); set it to '{fixed}'")


def explain_http_error(status: int | None, summary: str, *, url: str) -> str | None:
    """A one-line hint for a status that points at the configuration, or None for ordinary errors."""
    if status == 401:
        return ("REPLICATE_API_TOKEN is missing or was refused by Replicate (HTTP 401): set it to a valid "
                "token from https://replicate.com/account/api-tokens")
    if status == 404 and not _ABOUT_A_MODEL.search(summary):
        return (f"Replicate answered HTTP 404 ({summary[:100]}) for an API endpoint: REPLICATE_BASE_URL "
                f"('{shown_url(url)}') is probably not the API's root; unset it to use {DEFAULT_BASE_URL}")
    return None


def explain_unreachable(error_class: str, *, url: str) -> str:
    return (f"cannot reach Replicate at '{shown_url(url)}' ({error_class}): check REPLICATE_BASE_URL "
            "and the network")
