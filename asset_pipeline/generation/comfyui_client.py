"""One ComfyUI server's HTTP and WebSocket API, over httpx and websockets (sync clients).

Why no ComfyUI client package: the ones on PyPI (comfy-api-client, comfyui-utils and similar)
are thin, young wrappers around the same few routes, each pinning its own aiohttp/requests
stack, without a bounded `/view` download, a client-chosen `prompt_id` or `extra_data`, and
without the error shapes (`node_errors`) we must classify. httpx and websockets are maintained,
already used by the project, and these routes are ComfyUI's documented server API, so the
client stays this small module.

Every method raises `ComfyUnreachable` for transport failures and `ComfyHTTPError` for an HTTP
error answer (with its parsed JSON body when there is one); the backend classifies them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

WS_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # previews are binary frames of a few hundred kB; refuse more
MAX_JSON_BYTES = 32 * 1024 * 1024  # /object_info of a big install is a few MB


class ComfyUnreachable(Exception):
    """The server could not be reached or dropped the connection; `sent` says whether the request may
    have arrived (a dropped answer, a read timeout) or surely did not (connection refused)."""

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent


class ComfyHTTPError(Exception):
    def __init__(self, status: int, body: Any, text: str):
        super().__init__(f"HTTP {status}")
        self.status, self.body, self.text = status, body, text


@dataclass(frozen=True)
class Submitted:
    prompt_id: str
    number: int | None


class ComfyClient:
    """The routes of one server at `url` (`http://host:port`, no trailing slash)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        extra: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s, connect=5.0),
                                  follow_redirects=False, **extra)

    def close(self) -> None:
        self._http.close()

    # -- HTTP -------------------------------------------------------------------------------------
    def submit(self, workflow: dict[str, Any], *, client_id: str, prompt_id: str, extra_data: dict[str, Any]) -> Submitted:
        body = {"prompt": workflow, "client_id": client_id, "prompt_id": prompt_id, "extra_data": extra_data}
        answer = self._json("POST", "/prompt", json=body)
        returned = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(returned, str) or not returned or len(returned) > 200:
            raise ComfyHTTPError(200, answer, "answered /prompt without a prompt_id")
        number = answer.get("number")
        return Submitted(returned, number if isinstance(number, int) else None)

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry, or None while it has none (queued, running, or unknown)."""
        answer = self._json("GET", f"/history/{prompt_id}")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    def recent_history(self, max_items: int = 200) -> dict[str, Any]:
        answer = self._json("GET", "/history", params={"max_items": max_items})
        return answer if isinstance(answer, dict) else {}

    def queue(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """(running, pending) queue items: [number, prompt_id, prompt, extra_data, outputs]."""
        answer = self._json("GET", "/queue")
        if not isinstance(answer, dict):
            return [], []
        def items(key: str) -> list[list[Any]]:
            value = answer.get(key)
            return [item for item in value if isinstance(item, list) and len(item) >= 2] if isinstance(value, list) else []
        return items("queue_running"), items("queue_pending")

    def delete_queued(self, prompt_id: str) -> None:
        self._request("POST", "/queue", json={"delete": [prompt_id]})

    def interrupt(self, prompt_id: str) -> None:
        """Interrupt `prompt_id` (recent servers honour the id; older ones interrupt whatever runs,
        so the caller checks that ours is the one running first)."""
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def object_info(self) -> Any:
        return self._json("GET", "/object_info")

    def system_stats(self) -> Any:
        return self._json("GET", "/system_stats")

    def view(self, image: dict[str, Any], *, max_bytes: int, timeout_s: float) -> bytes:
        """One output file, refused past `max_bytes` or `timeout_s` (a server streaming for ever)."""
        params = {key: str(image.get(key) or "") for key in ("filename", "subfolder", "type")}
        deadline = time.monotonic() + timeout_s
        chunks, size = [], 0
        try:
            with self._http.stream("GET", "/view?" + urlencode(params)) as response:
                if response.status_code != 200:
                    raise ComfyHTTPError(response.status_code, None, f"/view answered HTTP {response.status_code}")
                for chunk in response.iter_bytes(65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ViewRefused(f"the output is larger than {max_bytes // (1024 * 1024)} MB")
                    if time.monotonic() > deadline:
                        raise ViewRefused(f"the output took longer than {timeout_s:g} s to download")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ComfyUnreachable(f"{self.url} failed while sending an output ({exc.__class__.__name__})", sent=True) from None
        return b"".join(chunks)

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ComfyUnreachable(f"{self.url} is not reachable ({exc.__class__.__name__})", sent=False) from None
        except httpx.HTTPError as exc:
            raise ComfyUnreachable(f"{self.url} dropped the connection ({exc.__class__.__name__})", sent=True) from None
        if response.status_code >= 400:
            raise ComfyHTTPError(response.status_code, _parse(response), response.text[:300])
        return response

    def _json(self, method: str, path: str, **options: Any) -> Any:
        response = self._request(method, path, **options)
        if len(response.content) > MAX_JSON_BYTES:
            raise ComfyHTTPError(response.status_code, None, f"{path} answered more than {MAX_JSON_BYTES} bytes")
        body = _parse(response)
        if body is _UNREADABLE:
            raise ComfyHTTPError(response.status_code, None, f"{path} answered with a body that is not JSON")
        return body

    # -- WebSocket --------------------------------------------------------------------------------
    def events(self, client_id: str) -> ClientConnection:
        """The server's event stream for `client_id` (JSON text frames; binary frames are previews)."""
        ws_url = self.url.replace("https://", "wss://").replace("http://", "ws://") + f"/ws?clientId={client_id}"
        try:
            connection = connect(ws_url, open_timeout=5, close_timeout=1, max_size=WS_MAX_MESSAGE_BYTES)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ComfyUnreachable(f"{self.url} refused its event stream ({exc.__class__.__name__})", sent=False) from None
        # Entered as `with connect(...)` would (websockets 17 warns otherwise); it outlives this
        # call, so the caller closes it.
        return connection.__enter__()


class ViewRefused(Exception):
    """An output file that will never be usable (too big, too slow): the message says which."""


_UNREADABLE = object()


def _parse(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return _UNREADABLE


def next_event(connection: ClientConnection, timeout_s: float) -> dict[str, Any] | None:
    """The next JSON event, or None after `timeout_s` or for a frame that is no event (a preview).
    Raises `ComfyUnreachable` when the stream closed or broke."""
    try:
        frame = connection.recv(timeout=timeout_s)
    except TimeoutError:
        return None
    except (WebSocketException, OSError) as exc:
        raise ComfyUnreachable(f"event stream closed ({exc.__class__.__name__})", sent=True) from None
    if not isinstance(frame, str):
        return None
    try:
        event = json.loads(frame)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("data"), dict) else None


def new_prompt_id() -> str:
    return str(uuid.uuid4())
