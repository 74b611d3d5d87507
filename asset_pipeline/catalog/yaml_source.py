"""Reading a catalog file safely: only regular files of bounded size, YAML without duplicate keys.

`open()` on a FIFO blocks for ever and a huge file costs seconds and gigabytes to validate, so the
file is opened non-blocking, checked with `fstat` (the same file that is then read, so a swap in
between cannot slip past) and read no further than the limit. PyYAML keeps the last of two equal
keys in one mapping; `UniqueKeyLoader` refuses them instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_CATALOG_BYTES = 5 * 1024 * 1024
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CatalogFileProblem(Exception):
    """The file cannot be read as a catalog; the message says why (no path: the caller names it)."""


class DuplicateKey(Exception):
    """A mapping sets `key` twice; `entry` is the id of the mapping it is in, when it has one."""

    def __init__(self, key: str, entry: str | None, line: int):
        super().__init__(f"duplicate key '{key}' at line {line}")
        self.key, self.entry, self.line = key, entry, line


class UniqueKeyLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (libyaml's when installed), refusing a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base constructor reports it
                break
            if duplicate:
                raise DuplicateKey(str(key)[:80], _mapping_id(node), key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _mapping_id(node: yaml.MappingNode) -> str | None:
    for key_node, value_node in node.value:
        if getattr(key_node, "value", None) == "id" and isinstance(value_node, yaml.ScalarNode):
            return str(value_node.value)[:80]
    return None


def read_catalog_text(file: Path, *, limit: int = MAX_CATALOG_BYTES) -> str:
    """The text of `file`, refusing anything but a regular UTF-8 file of at most `limit` bytes."""
    descriptor = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
                "a device or socket"
            raise CatalogFileProblem(f"is {kind}, not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise CatalogFileProblem(f"is larger than the {limit // (1024 * 1024)} MB a catalog may have")
    return data.decode("utf-8")
