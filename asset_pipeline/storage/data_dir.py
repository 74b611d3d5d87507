"""Refuse data directories the pipeline must never write into, before a run writes anything.

The data directory receives `objects/`, `images/`, `requests/` and, by default, `ledger.db`. A
filesystem root, a system or home directory, a file, or a folder nobody can write would otherwise
start a run that fails every partition (or, as root, scatters files over `/`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.storage.object_store import check_object_store, is_object_url

VARIABLE = "ASSET_PIPELINE_DATA_DIR"
# Directories that belong to the system (the exact folder, not folders below it).
_SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
    "/usr/local", "/usr/local/bin", "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/log", "/var/tmp",
})
# Kernel file systems: nothing below them is a place for images.
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_data_dir(path: Any, *, variable: str = VARIABLE, write: bool = True) -> Any:
    """Create `path` if missing and prove it is a writable folder of its own; return it resolved.

    An `s3://bucket/prefix` URL is checked as an object store instead (issue 16: a probe object is
    put and deleted; see storage/object_store.py).

    With `write=False` (read-only commands) nothing is created or written: only what can never be
    a data directory is refused. Raises `ConfigurationError` naming `variable` and the reason.
    """
    if is_object_url(path):  # issue 16
        return check_object_store(str(path), variable=variable, write=write)
    resolved = Path(path).expanduser().resolve()
    if str(resolved) in _SYSTEM_DIRS or resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise ConfigurationError(variable, f"{resolved} is a system or home directory; point it at a folder of its own")
    if any(resolved == root or root in resolved.parents for root in _VIRTUAL_ROOTS):
        raise ConfigurationError(variable, f"{resolved} is inside a kernel file system; point it at a folder of its own")
    if resolved.exists() and not resolved.is_dir():
        raise ConfigurationError(variable, f"{resolved} exists and is not a directory")
    if not write:
        return resolved
    try:
        resolved.mkdir(parents=True, exist_ok=True)
        # Permission bits do not tell (root ignores them; immutable and read-only mounts do not
        # show in them): write and remove a probe file, as the store will.
        with tempfile.NamedTemporaryFile(dir=resolved, prefix=".write-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigurationError(variable, f"{resolved} is not a writable directory ({reason})") from None
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise ConfigurationError(variable, f"{resolved} is not readable")
    return resolved
