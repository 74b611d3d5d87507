"""Which hosts a provider's output files may be fetched from. Pure logic.

Patterns are `host`, `host:port` or `*.domain` (any subdomain of `domain`, not `domain` itself).
The default is Replicate's delivery domain plus the host and port of the API base URL when one is
set (a proxy, or the local fake provider, serves files there too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from asset_pipeline.errors import ConfigurationError

DEFAULT_DELIVERY_HOSTS = ("replicate.delivery", "*.replicate.delivery")
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?(:\d{1,5})?")


def delivery_hosts(configured: str | None, *, provider_base_url: str | None) -> tuple[str, ...]:
    """The configured comma-separated patterns, or the provider's delivery domain plus the host
    (and port) of `provider_base_url` when one is set (a proxy or the local fake serves files there)."""
    if configured is not None and configured.strip():
        patterns = tuple(part.strip().lower() for part in configured.split(",") if part.strip())
        for pattern in patterns:
            if not _HOST_PATTERN.fullmatch(pattern):
                raise ConfigurationError("ASSET_PIPELINE_DELIVERY_HOSTS", f"'{pattern[:100]}' is not a host "
                                         "pattern (host, host:port or *.domain; no scheme or path)")
        return patterns
    hosts = list(DEFAULT_DELIVERY_HOSTS)
    if provider_base_url:
        parts = urlsplit(provider_base_url)
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # a malformed port: the client cannot use this base URL either
            return tuple(hosts)
        if parts.hostname:
            hosts.append(f"{parts.hostname.lower()}:{port}" if port else parts.hostname.lower())
    return tuple(hosts)


def host_allowed(url: httpx.URL, patterns: Iterable[str]) -> bool:
    """Whether `url`'s host (and port) matches one of `patterns`: `host`, `host:port` or `*.domain`
    (any subdomain of `domain`, not `domain` itself)."""
    host = url.host.lower().rstrip(".")
    port = url.port or DEFAULT_PORTS.get(url.scheme)
    for pattern in patterns:
        name, _, pattern_port = pattern.partition(":")
        if pattern_port and str(port) != pattern_port:
            continue
        if name.startswith("*.") and host.endswith(name[1:]) and len(host) > len(name) - 1:
            return True
        if host == name:
            return True
    return False
