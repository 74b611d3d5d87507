"""Path safety: nothing the store builds can leave its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline.errors import UnsafePathError
from asset_pipeline.storage.paths import inside_root, safe_digest, safe_partition_key


@pytest.mark.parametrize("relative", ["../escape.png", "/etc/passwd", "images/../../x", "a/../../b"])
def test_paths_outside_the_root_are_refused(tmp_path: Path, relative: str) -> None:
    with pytest.raises(UnsafePathError, match="outside the image store root"):
        inside_root(tmp_path, relative)


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError):
        inside_root(root, "link/secret")
    assert inside_root(root, "images/a.png") == root.resolve() / "images" / "a.png"


@pytest.mark.parametrize("key", ["../x", "a/b", "", "UPPER", "nul\x00", "x" * 200])
def test_partition_keys_must_be_slugs(key: str) -> None:
    with pytest.raises(UnsafePathError, match="not a catalog slug"):
        safe_partition_key(key)


def test_digests_must_be_hex_sha256() -> None:
    assert safe_digest("a" * 64) == "a" * 64
    with pytest.raises(UnsafePathError, match="SHA-256"):
        safe_digest("../" + "a" * 61)
