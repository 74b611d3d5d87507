"""Fetch a provider's output file, bounded in every way a hostile answer could abuse.

A prediction's `output` is whatever the provider says it is, so fetching it is an untrusted request:

- only `https`/`http` URLs on the configured delivery hosts (`DeliveryLimits.hosts`, see
  `delivery_hosts.py`), checked again on every redirect hop, at most
  `max_redirects` hops; `data:` URIs are size-bounded and must be valid base64;
- at most `max_bytes`, counted while streaming (a `Content-Length` over it is refused unread);
- a total deadline besides httpx's per-read timeout, so a delivery dripping a few bytes a second
  cannot hold a run for ever;
- the run's cancellation event is checked between chunks, so a terminated run stops within
  seconds (within `read_timeout_s` on a delivery that sends nothing at all).

Redirects are followed by hand rather than with `follow_redirects=True` because httpx would only
let us look at each hop after it had been requested. Messages name the prediction and the host,
never the URL's path or query (signed URLs carry credentials there) and never the API token, which
is not sent: delivery URLs need none.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from asset_pipeline.errors import OutputNotFetched, OutputRefused
from asset_pipeline.generation.delivery_hosts import (
    DEFAULT_DELIVERY_HOSTS,
    host_allowed,
)


@dataclass(frozen=True)
class DeliveryLimits:
    hosts: tuple[str, ...] = DEFAULT_DELIVERY_HOSTS
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 120.0
    read_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    max_redirects: int = 5


class Delivery:
    """Downloads output files for one backend; thread-safe (one pooled httpx client)."""

    def __init__(self, limits: DeliveryLimits, *, transport: httpx.BaseTransport | None = None):
        self.limits = limits
        extra: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._client = httpx.Client(follow_redirects=False, **extra)

    def close(self) -> None:
        self._client.close()

    def fetch(self, output: object, *, partition_key: str, prediction_id: str, billed_usd: float,
              cancelled: threading.Event) -> bytes:
        """The bytes of a succeeded prediction's first output.

        Raises `OutputRefused` when the output can never be used, `OutputNotFetched` when the fetch
        failed for now (timeout, network, 5xx, or the run was terminated): the next run re-attaches.
        """
        fetch = _Fetch(self, partition_key=partition_key, prediction_id=prediction_id, billed_usd=billed_usd,
                       cancelled=cancelled)
        if isinstance(output, (list, tuple)):
            output = output[0] if output else None
        output = getattr(output, "url", output)  # replicate.helpers.FileOutput: fetch its URL ourselves
        if not isinstance(output, str) or not output.strip():
            raise fetch.refused(f"is not a file URL ({_kind(output)})")
        if output[:5].lower() == "data:":
            return fetch.data_uri(output)
        return fetch.url(output)


class _Fetch:
    """One download: the prediction it belongs to, its deadline, and how it fails."""

    def __init__(self, delivery: Delivery, *, partition_key: str, prediction_id: str, billed_usd: float,
                 cancelled: threading.Event):
        self.delivery, self.limits = delivery, delivery.limits
        self.partition_key, self.prediction_id, self.billed_usd = partition_key, prediction_id, billed_usd
        self.cancelled = cancelled
        self.deadline = time.monotonic() + self.limits.timeout_s

    def refused(self, why: str) -> OutputRefused:
        return OutputRefused(self.partition_key, f"prediction {self.prediction_id} succeeded but its output {why}",
                             prediction_id=self.prediction_id, billed_usd=self.billed_usd)

    def failed(self, why: str) -> OutputNotFetched:
        return OutputNotFetched(self.partition_key, f"prediction {self.prediction_id} succeeded but its output "
                                f"could not be downloaded: {why}; the next run re-attaches to it")

    def data_uri(self, uri: str) -> bytes:
        header, comma, payload = uri.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise self.refused("is a data: URI that is not base64-encoded")
        if len(payload) > (self.limits.max_bytes + 2) // 3 * 4 + 4:
            raise self.refused(f"is a data: URI over the {_mb(self.limits.max_bytes)} download limit")
        try:
            data = base64.b64decode(payload.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise self.refused("is a data: URI whose base64 is invalid") from None
        if not data:
            raise self.refused("is an empty data: URI")
        return data

    def url(self, raw: str) -> bytes:
        try:
            url = httpx.URL(raw.strip())
        except (httpx.InvalidURL, ValueError):
            raise self.refused("is not a valid URL") from None
        for _ in range(self.limits.max_redirects + 1):
            self._check(url)
            location = self._get(url)
            if isinstance(location, bytes):
                return location
            url = location
        raise self.refused(f"redirected more than {self.limits.max_redirects} times (a redirect loop?)")

    def _check(self, url: httpx.URL) -> None:
        if url.scheme not in ("https", "http"):
            raise self.refused(f"uses the scheme '{url.scheme or '(none)'}'; only https and http are fetched")
        if not url.host:
            raise self.refused("is a URL without a host")
        if not host_allowed(url, self.limits.hosts):
            raise self.refused(f"is on host '{_where(url)}', not an allowed delivery host "
                               f"(ASSET_PIPELINE_DELIVERY_HOSTS: {', '.join(self.limits.hosts)})")

    def _get(self, url: httpx.URL) -> bytes | httpx.URL:
        """The body, or the next URL when the answer is a redirect."""
        limits = self.limits
        remaining = self._remaining()
        timeout = httpx.Timeout(min(limits.read_timeout_s, remaining), connect=min(limits.connect_timeout_s, remaining))
        try:
            with self.delivery._client.stream("GET", url, timeout=timeout) as response:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    try:
                        return url.join(location)
                    except (httpx.InvalidURL, ValueError):
                        raise self.refused(f"redirected from '{_where(url)}' to an invalid URL") from None
                if response.status_code in (404, 410):
                    raise self.refused(f"is gone from '{_where(url)}' (HTTP {response.status_code}; expired)")
                if response.status_code >= 400:
                    raise self.failed(f"'{_where(url)}' answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limits.max_bytes:
                    raise self.refused(f"is {_mb(int(declared))}, over the {_mb(limits.max_bytes)} download "
                                       "limit (ASSET_PIPELINE_MAX_DOWNLOAD_MB)")
                return self._read(response)
        except httpx.TimeoutException:
            if self._remaining() <= 0:
                raise self._over_deadline() from None
            raise self.failed(f"'{_where(url)}' sent nothing for {limits.read_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise self.failed(f"{exc.__class__.__name__} from '{_where(url)}'") from None

    def _read(self, response: httpx.Response) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():  # as each chunk arrives: no buffering up to a size
            body += chunk
            if len(body) > self.limits.max_bytes:
                raise self.refused(f"is over the {_mb(self.limits.max_bytes)} download limit "
                                   "(ASSET_PIPELINE_MAX_DOWNLOAD_MB); stopped reading")
            self._remaining()
        return bytes(body)

    def _remaining(self) -> float:
        """Seconds left before the deadline; raises once the run is terminated or time is up."""
        if self.cancelled.is_set():
            raise OutputNotFetched(self.partition_key, f"run terminated while downloading prediction "
                                   f"{self.prediction_id}'s output; the next run re-attaches to it")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._over_deadline()
        return remaining

    def _over_deadline(self) -> OutputNotFetched:
        return self.failed(f"the download did not finish within {self.limits.timeout_s:g} s "
                           "(ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S)")


def _where(url: httpx.URL) -> str:
    """Scheme, host and port only: paths and queries of signed URLs are credentials."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _kind(output: object) -> str:
    if output is None or output == "" or output == []:
        return "no output"
    return f"a {type(output).__name__}"


def _mb(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MB"
