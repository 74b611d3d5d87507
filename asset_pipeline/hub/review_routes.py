"""The hub's review view: the review page, its JSON API and the images of earlier takes.

    GET  /review                        the review page (large image, prompt, cost, take, verdicts)
    GET  /api/reviews?state=S           every generated image with its review state (S filters)
    GET  /api/reviews/{key}/history     one partition's images, newest first, with their verdicts
    POST /api/reviews/{key}             {"sha256", "decision": approved|rejected, "note", "prompt_addition"}
    GET  /review-objects/{sha256}       any stored image by content hash (earlier takes)

Every route needs the hub token when one is set, as the other routes do; a verdict is only ever
written with it. The data comes from a `ReviewBackend` the command layer injects (it reads the
Dagster instance and the ledger), called in a worker thread so the event loop never waits on a
database. Added to the app by `mount_review_routes`, apart from the server's own routes.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from asset_pipeline.errors import ReviewError, UnsafePathError
from asset_pipeline.hub.access import authorized, presented_token
from asset_pipeline.hub.request_body import limited_body
from asset_pipeline.storage.paths import inside_root

DASHBOARD = Path(__file__).parent / "dashboard"
MAX_REVIEW_BYTES = 16 * 1024  # a note is at most 2000 characters; a bigger body is refused unread
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReviewBackend(Protocol):
    def items(self, state: str | None = None) -> dict[str, Any]: ...
    def history(self, partition_key: str) -> list[dict[str, Any]]: ...
    def review(self, partition_key: str, *, sha256: str | None, decision: str, note: str = "",
               prompt_addition: str | None = None) -> dict[str, Any]: ...


def _status_of(error: ReviewError) -> int:
    """404 for a partition not in the catalog, 409 for an image that is not current, else 400."""
    return {"UnknownPartition": 404, "NotCurrentImage": 409}.get(error.__class__.__name__, 400)


def review_routes(backend: ReviewBackend, *, token: str | None, image_root: Path | None) -> list[Route]:
    def allowed(request: Request) -> bool:
        return authorized(token, presented_token(request.headers, request.query_params))

    def refused() -> Response:
        return JSONResponse({"error": "missing or wrong token"}, status_code=401)

    def error(exc: ReviewError) -> Response:
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=_status_of(exc))

    async def page(request: Request) -> Response:
        return FileResponse(DASHBOARD / "review.html", media_type="text/html")

    async def items(request: Request) -> Response:
        if not allowed(request):
            return refused()
        state = request.query_params.get("state") or None
        try:
            return JSONResponse(await asyncio.to_thread(backend.items, state[:20] if state else None))
        except ReviewError as exc:
            return error(exc)

    async def history(request: Request) -> Response:
        if not allowed(request):
            return refused()
        try:
            return JSONResponse({"history": await asyncio.to_thread(backend.history, request.path_params["key"][:200])})
        except ReviewError as exc:
            return error(exc)

    async def verdict(request: Request) -> Response:
        if not allowed(request):
            return refused()
        body = await limited_body(request, MAX_REVIEW_BYTES)
        if body is None:
            return JSONResponse({"error": f"body over {MAX_REVIEW_BYTES} bytes"}, status_code=413)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return JSONResponse({"error": "malformed JSON"}, status_code=400)
        if not isinstance(document, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        note, addition, sha = document.get("note", ""), document.get("prompt_addition"), document.get("sha256")
        decision = document.get("decision")
        try:
            if sha is None or not isinstance(sha, str):
                raise ReviewError("sha256", "required: the sha256 of the image reviewed")
            if not isinstance(decision, str):
                raise ReviewError("decision", "expected 'approved' or 'rejected'")
            if not isinstance(note, str) or (addition is not None and not isinstance(addition, str)):
                raise ReviewError("note", "note and prompt_addition must be text")
            saved = await asyncio.to_thread(backend.review, request.path_params["key"][:200], sha256=sha,
                                            decision=decision, note=note, prompt_addition=addition or None)
        except ReviewError as exc:
            return error(exc)
        return JSONResponse(saved)

    async def stored_object(request: Request) -> Response:
        if not allowed(request):
            return refused()
        sha = request.path_params["sha256"]
        if not _SHA256.match(sha) or image_root is None:
            return JSONResponse({"error": "no such image"}, status_code=404)
        try:
            path = inside_root(image_root, Path("objects") / sha[:2] / f"{sha}.png")
        except UnsafePathError:
            return JSONResponse({"error": "no such image"}, status_code=404)
        if not path.is_file():
            return JSONResponse({"error": "no such image"}, status_code=404)
        # Content-addressed: the bytes behind a hash never change.
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=31536000, immutable"})

    return [
        Route("/review", page),
        Route("/api/reviews", items),
        Route("/api/reviews/{key}/history", history),
        Route("/api/reviews/{key}", verdict, methods=["POST"]),
        Route("/review-objects/{sha256}", stored_object),
    ]


def mount_review_routes(app: Starlette, backend: ReviewBackend, *, token: str | None, image_root: Path | None) -> None:
    """Put the review routes in front of the hub's own (none of their paths overlap)."""
    app.router.routes[0:0] = review_routes(backend, token=token, image_root=image_root)

