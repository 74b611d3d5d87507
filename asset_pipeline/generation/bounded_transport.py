"""An httpx transport that refuses API answers larger than a limit, while they stream in.

The official `replicate` client reads every API answer whole into memory; a prediction whose
output is an inline `data:` URI (or a hostile or broken server) can make that answer arbitrarily
large. httpx has no response-size limit of its own, so this wrapper counts the bytes as the client
reads them and stops at the limit: one image's memory stays bounded whatever the API sends.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx


class ResponseTooLarge(httpx.TransportError):
    """An answer was longer than the transport's limit; it was not read past the limit."""


class _CountedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, *, limit: int, url: str):
        self._inner, self._limit, self._url = inner, limit, url

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(f"answer from {self._url} is longer than {self._limit} bytes")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """Wraps `inner` (a plain `httpx.HTTPTransport` by default); answers over `max_bytes` raise
    `ResponseTooLarge`, by their Content-Length at once, else as soon as the count passes it."""

    def __init__(self, *, max_bytes: int, inner: httpx.BaseTransport | None = None):
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._max_bytes = max_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        where = str(request.url.copy_with(query=None, fragment=None))  # never the query string
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            response.close()
            raise ResponseTooLarge(f"answer from {where} is longer than {self._max_bytes} bytes ({declared} declared)")
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(status_code=response.status_code, headers=response.headers,
                              stream=_CountedStream(response.stream, limit=self._max_bytes, url=where),
                              extensions=response.extensions, request=request)

    def close(self) -> None:
        self._inner.close()
