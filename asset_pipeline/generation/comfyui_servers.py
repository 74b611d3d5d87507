"""Which ComfyUI server takes the next image: bounded queue depth per server, spread across servers.

ComfyUI runs one prompt at a time per server; keeping `depth` of our prompts at a server (one
running, the rest waiting in its queue) keeps its GPU busy without piling up work that a restart
would lose. A new image goes to the least-loaded server, ties to the one used least; a server that
just failed to answer is avoided for `avoid_s` while another is free. Pure threading, no I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from asset_pipeline.errors import ConfigurationError

VARIABLE = "ASSET_PIPELINE_COMFYUI_URL"


def parse_urls(value: str) -> list[str]:
    """`http://a:8188, http://b:8188` -> checked base URLs; errors name the entry."""
    urls = []
    for raw in value.split(","):
        url = raw.strip().rstrip("/")
        if not url:
            continue
        if not url.startswith(("http://", "https://")) or len(url) > 300 or any(c in url for c in " ?#@"):
            raise ConfigurationError(VARIABLE, f"'{url[:80]}' is not an http(s)://host:port base URL")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ConfigurationError(VARIABLE, "no ComfyUI server URL given")
    return urls


class ServerPool:
    def __init__(self, urls: list[str], *, depth: int, avoid_s: float = 5.0):
        self.urls = list(urls)
        self.depth = depth
        self.avoid_s = avoid_s
        self._load = dict.fromkeys(self.urls, 0)
        self._used = dict.fromkeys(self.urls, 0)
        self._avoid_until = dict.fromkeys(self.urls, 0.0)
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, cancelled: threading.Event) -> Iterator[str | None]:
        """A server with room for one more prompt (None if the run was terminated while waiting)."""
        url = self._acquire(cancelled)
        try:
            yield url
        finally:
            if url is not None:
                with self._cond:
                    self._load[url] -= 1
                    self._cond.notify_all()

    def avoid(self, url: str) -> None:
        with self._cond:
            if url in self._avoid_until:
                self._avoid_until[url] = time.monotonic() + self.avoid_s

    def load(self) -> dict[str, int]:
        with self._cond:
            return dict(self._load)

    def _acquire(self, cancelled: threading.Event) -> str | None:
        with self._cond:
            while not cancelled.is_set():
                now = time.monotonic()
                free = [url for url in self.urls if self._load[url] < self.depth]
                healthy = [url for url in free if self._avoid_until[url] <= now] or free
                if healthy:
                    url = min(healthy, key=lambda u: (self._load[u], self._used[u]))
                    self._load[url] += 1
                    self._used[url] += 1
                    return url
                self._cond.wait(0.25)
        return None
