"""The latest state per key (partition or run), bounded: at most `limit` keys in memory.

Past the limit the least recently updated *finished* entry is forgotten first, then the least
recently updated of any kind, so a flood of made-up keys can push out old entries but never grow
the hub. Two insertion-ordered dicts keep both orders, so updating and evicting are O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class BoundedLatest(Mapping[str, dict[str, Any]]):
    def __init__(self, limit: int, seed: Callable[[str], dict[str, Any]], finished: Callable[[dict[str, Any]], bool]):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.evicted = 0
        self._seed = seed
        self._is_finished = finished
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()  # least recently updated first
        self._finished: OrderedDict[str, None] = OrderedDict()  # the finished ones, same order

    def update(self, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Merge the non-None `fields` into `key`'s entry (created if new); it becomes the most recent."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._seed(key)
        else:
            self._entries.move_to_end(key)
        entry.update({name: value for name, value in fields.items() if value is not None})
        if self._is_finished(entry):
            self._finished[key] = None
            self._finished.move_to_end(key)
        else:
            self._finished.pop(key, None)
        while len(self._entries) > self.limit:
            self._evict()
        return entry

    def recent(self, count: int) -> list[dict[str, Any]]:
        """The `count` most recently updated entries, oldest of them first."""
        newest: list[dict[str, Any]] = []
        for entry in reversed(self._entries.values()):
            if len(newest) == count:
                break
            newest.append(entry)
        newest.reverse()
        return newest

    def page(self, after: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` entries whose key sorts after `after`, by key: a stable order for paging."""
        return [self._entries[key] for key in sorted(key for key in self._entries if key > after)[:limit]]

    def _evict(self) -> None:
        if self._finished:
            key, _ = self._finished.popitem(last=False)
            del self._entries[key]
        else:
            self._entries.popitem(last=False)
        self.evicted += 1

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
