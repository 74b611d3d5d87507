"""What the metered-call core needs from an image store, as a protocol: look an image up by
request hash, and store a rendered one. The local folder store (`resources/image_store.py`)
implements it; another store (S3, in memory) only has to provide these two methods.

Defined here, in the core, so `generation/producer.py` can store and then charge without knowing
which store, or Dagster, is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredImage:
    """An image in the store; `record` is what the generation that made it reported."""

    path: Path
    object_path: Path
    sha256: str
    request_hash: str
    record: dict[str, Any]


class ImageStorage(Protocol):
    """The two store operations the per-image sequence uses."""

    def find(self, request_hash: str, *, partition_key: str) -> StoredImage | None:
        """The stored image for `request_hash`, made current for `partition_key`; None if absent or damaged."""
        ...

    def put(self, png: bytes, *, partition_key: str, request_hash: str, record: dict[str, Any],
            original: bytes | None = None, original_format: str | None = None,
            aliases: list[str] | None = None) -> StoredImage:
        """Store `png` for `partition_key`, indexed under `request_hash` and `aliases`."""
        ...
