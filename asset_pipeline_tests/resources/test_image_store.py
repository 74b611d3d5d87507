"""Image store: content-addressed objects, per-partition paths, cache lookups that verify bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from asset_pipeline.errors import StoreError, UnsafePathError
from asset_pipeline.resources.image_store import ImageStore

REQUEST = "1" * 64
OTHER_REQUEST = "2" * 64


def test_put_writes_object_partition_file_and_index(tmp_path: Path) -> None:
    store = ImageStore(root=str(tmp_path))
    stored = store.put(b"png-bytes", partition_key="hero-1", request_hash=REQUEST, record={"cost_usd": 0.01})
    sha = hashlib.sha256(b"png-bytes").hexdigest()
    assert stored.sha256 == sha
    assert stored.path == tmp_path.resolve() / "images" / "hero-1.png"
    assert stored.object_path == tmp_path.resolve() / "objects" / sha[:2] / f"{sha}.png"
    assert stored.path.read_bytes() == stored.object_path.read_bytes() == b"png-bytes"
    assert (tmp_path / "requests" / f"{REQUEST}.json").exists()


def test_find_is_a_cache_hit_that_restores_the_partition_file(tmp_path: Path) -> None:
    store = ImageStore(root=str(tmp_path))
    store.put(b"png-bytes", partition_key="hero-1", request_hash=REQUEST, record={"model": "m"})
    assert store.find(OTHER_REQUEST, partition_key="hero-1") is None

    twin = store.find(REQUEST, partition_key="hero-2")  # another entry asking for the same picture
    assert twin is not None and twin.record["model"] == "m"
    assert store.partition_path("hero-2").read_bytes() == b"png-bytes"

    store.partition_path("hero-1").write_bytes(b"tampered")
    assert store.find(REQUEST, partition_key="hero-1") is not None
    assert store.partition_path("hero-1").read_bytes() == b"png-bytes"


def test_damaged_objects_or_index_entries_are_misses(tmp_path: Path) -> None:
    store = ImageStore(root=str(tmp_path))
    stored = store.put(b"png-bytes", partition_key="hero-1", request_hash=REQUEST, record={})
    stored.object_path.write_bytes(b"truncated")
    assert store.find(REQUEST, partition_key="hero-1") is None
    (tmp_path / "requests" / f"{REQUEST}.json").write_text("{not json")
    assert store.find(REQUEST, partition_key="hero-1") is None


def test_unsafe_keys_never_touch_the_disk(tmp_path: Path) -> None:
    store = ImageStore(root=str(tmp_path / "root"))
    with pytest.raises(UnsafePathError):
        store.put(b"x", partition_key="../escape", request_hash=REQUEST, record={})
    with pytest.raises(UnsafePathError):
        store.find("../../etc/passwd", partition_key="hero-1")
    with pytest.raises(UnsafePathError):
        store.resolve("../outside.json")
    assert not (tmp_path / "escape.png").exists()


def test_reading_a_missing_partition_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="materialize `images` first"):
        ImageStore(root=str(tmp_path)).read_partition("hero-9")
