"""Reading a request body with a size limit, for every hub route that takes one (publishers, reviews)."""

from __future__ import annotations

from starlette.requests import Request


async def limited_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to pass `limit` bytes: a declared
    Content-Length is checked before reading, a chunked body while it streams, so an oversized
    upload never sits in memory (Starlette's `request.body()` has no limit)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
