"""Who may publish and subscribe, and where the hub may listen. Pure logic."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from asset_pipeline.errors import ConfigurationError


def check_bind(host: str, token: str | None) -> None:
    """Without a token the hub serves loopback only: anyone who can reach it could publish."""
    if token:
        return
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            "ASSET_PIPELINE_HUB_TOKEN",
            f"refusing to listen on {host} without a token; set ASSET_PIPELINE_HUB_TOKEN or bind 127.0.0.1",
        )


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return query.get("token")


def authorized(expected: str | None, presented: str | None) -> bool:
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())
