"""The image store: content-addressed PNG files plus a stable path per partition.

Layout under `root`:

    objects/ab/<sha256>.png        every distinct image once, named by its content hash
    images/<partition_key>.png     the current image of each partition (what the website uses)
    requests/<request_hash>.json   request hash -> the stored image: the cache index, written last

The root may be an `s3://bucket/prefix` (issue 16, storage/object_store.py): the same layout as
object keys, each written in one atomic PUT. Every write is atomic, so a crash leaves either the previous file or the complete new one. The
request index is written after both image files, so an index entry always points at a complete
object; a lookup re-hashes the object before trusting it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from asset_pipeline.errors import ConfigurationError, StoreError
from asset_pipeline.resources.run_config_guard import (
    configuration_failure,
    enforce_operator_config,
)
from asset_pipeline.settings import from_settings
from asset_pipeline.storage.atomic import atomic_write
from asset_pipeline.storage.data_dir import VARIABLE, check_data_dir
from asset_pipeline.storage.images import StoredImage
from asset_pipeline.storage.object_store import store_root, within_store
from asset_pipeline.storage.paths import safe_digest, safe_partition_key


class ImageStore(dg.ConfigurableResource):
    """Reads and writes generated images under one root folder; implements `storage.images.ImageStorage`."""

    root: str = Field(
        default_factory=from_settings("data_dir", str),
        description="Folder that holds every stored image and summary (ASSET_PIPELINE_DATA_DIR); fixed by the operator.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a run config that moves the store, and a data dir that is unusable, before any write."""
        enforce_operator_config(self, context, label="image_store", fixed={"root": VARIABLE})
        try:
            check_data_dir(self.root)
        except ConfigurationError as exc:
            raise configuration_failure(exc) from None

    @property
    def root_path(self) -> Any:
        """The local folder, or (issue 16) the `s3://` prefix as a UPath with the same interface."""
        return store_root(self.root)

    def resolve(self, relative: str | Path) -> Any:
        """A path inside the store; raises `UnsafePathError` for anything that would escape it."""
        return within_store(self.root_path, relative)

    def partition_path(self, partition_key: str) -> Path:
        return self.resolve(Path("images") / f"{safe_partition_key(partition_key)}.png")

    def object_path(self, sha256: str) -> Path:
        digest = safe_digest(sha256)
        return self.resolve(Path("objects") / digest[:2] / f"{digest}.png")

    def variant_path(self, partition_key: str, file_name: str) -> Path:
        return self.resolve(Path("variants") / safe_partition_key(partition_key) / file_name)

    def _index_path(self, request_hash: str) -> Path:
        return self.resolve(Path("requests") / f"{safe_digest(request_hash)}.json")

    def put(
        self,
        png: bytes,
        *,
        partition_key: str,
        request_hash: str,
        record: dict[str, Any],
        original: bytes | None = None,
        original_format: str | None = None,
        aliases: list[str] | None = None,
    ) -> StoredImage:
        """Store `png` for `partition_key` and index it under `request_hash`.

        `original` is the provider's own file (before fitting to the spec's size), kept beside it.
        """
        sha256 = hashlib.sha256(png).hexdigest()
        object_path = self.object_path(sha256)
        if not object_path.exists():
            atomic_write(object_path, png)
        if original is not None:
            extension = (original_format or "bin").lower().replace("jpeg", "jpg")
            original_path = self.resolve(Path("originals") / sha256[:2] / f"{sha256}.{extension}")
            atomic_write(original_path, original)
            record = {**record, "original_path": str(original_path)}
        partition_path = self.partition_path(partition_key)
        atomic_write(partition_path, png)
        full_record = {
            **record,
            "sha256": sha256,
            "request_hash": request_hash,
            "partition_key": partition_key,
            "stored_at": datetime.now(UTC).isoformat(),
        }
        for indexed_hash in [request_hash, *(aliases or [])]:
            atomic_write(self._index_path(indexed_hash), json.dumps(full_record, sort_keys=True).encode())
        return StoredImage(partition_path, object_path, sha256, request_hash, full_record)

    def put_fallback(self, png: bytes, *, partition_key: str, record: dict[str, Any]) -> StoredImage:
        """Store a fallback image as the partition's current image, indexed under no request hash."""
        sha256 = hashlib.sha256(png).hexdigest()
        atomic_write(self.object_path(sha256), png)
        path = self.partition_path(partition_key)
        atomic_write(path, png)
        full_record = {**record, "sha256": sha256, "fallback": True, "stored_at": datetime.now(UTC).isoformat()}
        return StoredImage(path, self.object_path(sha256), sha256, "", full_record)

    def find(self, request_hash: str, *, partition_key: str) -> StoredImage | None:
        """The stored image for `request_hash`, made current for `partition_key`; None if absent or damaged."""
        index_path = self._index_path(request_hash)
        try:
            record = json.loads(index_path.read_bytes())
            sha256 = safe_digest(record["sha256"])
            png = self.object_path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, StoreError):
            return None  # a damaged index entry is a miss: the image is generated again
        if hashlib.sha256(png).hexdigest() != sha256:
            return None
        partition_path = self.partition_path(partition_key)
        if not _same_content(partition_path, sha256):
            atomic_write(partition_path, png)
        return StoredImage(partition_path, self.object_path(sha256), sha256, request_hash, record)

    def contains(self, request_hash: str) -> bool:
        """Whether an image for `request_hash` is indexed and its object file exists (no side effects)."""
        try:
            record = json.loads(self._index_path(request_hash).read_bytes())
            return self.object_path(record["sha256"]).exists()
        except (FileNotFoundError, ValueError, KeyError, TypeError, StoreError):
            return False

    def read_partition(self, partition_key: str) -> bytes:
        path = self.partition_path(partition_key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StoreError(path, "no stored image for this partition; materialize `images` first") from None


def _same_content(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except FileNotFoundError:
        return False
