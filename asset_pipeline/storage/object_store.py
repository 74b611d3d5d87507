"""Image stores on object storage: `ASSET_PIPELINE_DATA_DIR=s3://bucket/prefix` (issue 16).

Through `universal-pathlib` over fsspec's `s3fs`: the pathlib interface the local store already
uses (`/`, `read_bytes`, `exists`, `glob`, `unlink`), so the store, the summaries and the hub keep
one code path; it is what Dagster's own UPath IO managers are built on, and s3fs speaks to any
S3-compatible service (AWS S3, MinIO, R2, GCS's interoperability endpoint) with the standard AWS
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE).

Never a partial object: an S3 PUT is atomic (readers see the previous object or the complete new
one, never a prefix of it), and so is a multipart upload, visible only once completed; `publish`
sends each object as one `put_object` (s3fs `pipe_file`, multipart only above 50 MB). The store's
write order (object, then partition key, then the request index last) gives the same guarantees as
the local folder's renames. Listings are not cached (`use_listings_cache=False`): other runs write
the same prefix.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from upath import UPath

from asset_pipeline.errors import ConfigurationError, UnsafePathError

SCHEMES = ("s3",)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._=+-]{1,200}$")


def is_object_url(value: object) -> bool:
    """True for an `s3://...` data dir (a string or an object-store path), False for a local folder."""
    if isinstance(value, Path):
        return False
    if isinstance(value, UPath):
        return value.protocol in SCHEMES
    return isinstance(value, str) and value.split("://", 1)[0].lower() in SCHEMES and "://" in value


def check_object_url(url: str, *, variable: str) -> str:
    """`url` normalised (`s3://bucket/prefix`, no trailing slash) if it is safe to store under.

    Refused: credentials in the URL (they belong in the AWS variables and would end up in logs and
    metadata), a query or fragment, a bad bucket name, and prefix segments that are empty, `.`,
    `..` or carry characters other than letters, digits and `._=+-`. The reason never repeats the
    URL's user or password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigurationError(variable, "not a valid s3:// URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(variable, f"unsupported scheme '{parts.scheme[:20]}'; use s3://bucket/prefix")
    if "@" in parts.netloc:
        raise ConfigurationError(variable, "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead")
    if parts.query or parts.fragment:
        raise ConfigurationError(variable, "an s3:// data dir takes no query or fragment")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigurationError(variable, f"'{bucket[:70]}' is not a valid bucket name")
    segments = [segment for segment in parts.path.split("/")]
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.match(segment):
            raise ConfigurationError(variable, f"prefix segment {segment[:60]!r} is not allowed; use letters, digits "
                                     "and ._=+- between single slashes")
    return f"{parts.scheme.lower()}://{bucket}" + "".join(f"/{segment}" for segment in segments)


def object_root(url: str, *, variable: str) -> UPath:
    """The store's root on object storage, after `check_object_url`.

    AWS_ENDPOINT_URL is read by botocore itself; it is also passed explicitly so fsspec's cache of
    file-system instances (keyed by these options) never hands out a client for another endpoint.
    """
    options: dict[str, Any] = {"use_listings_cache": False}
    if os.environ.get("AWS_ENDPOINT_URL"):
        options["client_kwargs"] = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    return UPath(check_object_url(url, variable=variable), **options)


def inside_prefix(root: UPath, relative: str | PurePosixPath) -> UPath:
    """`root / relative`; raise `UnsafePathError` unless it names a key strictly under `root`'s prefix.

    Object keys are not resolved by any file system, so the check is on the text: no absolute
    path, no `..` or `.` segment, no empty segment, no backslash.
    """
    text = str(relative)
    normal = posixpath.normpath(text) if text else ""
    segments = text.split("/")
    if (not text or text.startswith("/") or "\\" in text or normal != text
            or any(segment in ("", ".", "..") for segment in segments)):
        raise UnsafePathError(text[:100], f"refusing a key outside the image store prefix {root}")
    return root.joinpath(*segments)


def publish(path: UPath, data: bytes | Iterable[bytes]) -> None:
    """Write one object in a single atomic PUT (see the module docstring)."""
    body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
    path.fs.pipe_file(path.path, body)


def check_object_store(url: str, *, variable: str, write: bool = True) -> UPath:
    """The root for `url`; with `write`, prove it is writable by putting and deleting a probe object.

    Errors name `variable` and the service's error code, never credentials.
    """
    root = object_root(url, variable=variable)
    if not write:
        return root
    probe = root / f".write-probe-{uuid.uuid4().hex}"
    try:
        publish(probe, b"")
        probe.unlink()
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and OS errors alike
        raise ConfigurationError(variable, f"{root} is not writable ({describe(exc)})") from None
    return root


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a storage error: its class and the service's error code."""
    code = _error_code(exc)
    return f"{exc.__class__.__name__}{f': {code}' if code else ''}"


def _error_code(exc: BaseException) -> str | None:
    response: Any = getattr(exc, "response", None) or getattr(exc.__cause__, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code)[:60] if code else None
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:80]
    return None


def store_root(root: str | Path | UPath) -> Path | UPath:
    """The store's root: a local folder, or the object-store prefix of an `s3://` URL."""
    if is_object_url(root):
        return root if isinstance(root, UPath) else object_root(str(root), variable="ASSET_PIPELINE_DATA_DIR")
    return Path(str(root))


def within_store(root: Path | UPath, relative: str | Path) -> Any:
    """`root / relative`, refused (`UnsafePathError`) if it leaves the store, local or object storage."""
    if isinstance(root, Path):
        from asset_pipeline.storage.paths import inside_root  # local folders: resolved, symlinks followed

        return inside_root(root, relative)
    return inside_prefix(root, Path(relative).as_posix() if isinstance(relative, Path) else relative)
