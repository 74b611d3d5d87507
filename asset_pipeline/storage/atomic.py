"""Crash-safe file writes: temporary file in the same folder, fsync, then rename over the target.

A reader (or a crash at any moment) sees either the old file or the complete new one, never a
truncated image. `os.replace` is atomic on POSIX within one file system, which is why the
temporary file lives beside the target.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asset_pipeline.storage.object_store import publish


def atomic_write(path: Any, data: bytes | Iterable[bytes]) -> None:
    """Write `data` (bytes or an iterable of chunks) to `path` atomically and durably.

    An object-store path (`s3://`) is written in one atomic PUT instead (storage/object_store.py).
    """
    if not isinstance(path, Path):  # issue 16: a UPath on object storage
        publish(path, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    chunks = (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        with open(temporary, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (the directory entry), where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
