"""Path sanitisation: every path the store builds must stay inside its root."""

from __future__ import annotations

import re
from pathlib import Path

from asset_pipeline.catalog.spec import SLUG_PATTERN
from asset_pipeline.errors import UnsafePathError

_SLUG = re.compile(SLUG_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def inside_root(root: Path, relative: str | Path) -> Path:
    """`root / relative`, resolved; raise `UnsafePathError` if it escapes `root` (.., absolute, symlink)."""
    resolved_root = root.resolve()
    candidate = (resolved_root / relative).resolve()
    if candidate != resolved_root and resolved_root not in candidate.parents:
        raise UnsafePathError(relative, f"refusing a path outside the image store root {resolved_root}")
    return candidate


def safe_partition_key(key: str) -> str:
    """Return `key` if it is a catalog slug; partition keys become file names."""
    if not isinstance(key, str) or not _SLUG.match(key):
        raise UnsafePathError(repr(key)[:100], "not a catalog slug; partition keys become file names")
    return key


def safe_digest(digest: str) -> str:
    """Return `digest` if it is a lowercase hex SHA-256."""
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise UnsafePathError(repr(digest)[:100], "not a hex SHA-256 digest")
    return digest
