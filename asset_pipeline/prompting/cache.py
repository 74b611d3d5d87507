"""Written prompts by request hash, as JSON files under `<data dir>/prompts/`: a re-run costs nothing.

A file is written atomically before its call is charged, so a crash never loses a paid answer; a
file that does not parse (hand-edited, truncated by a full disk) counts as missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from asset_pipeline.prompting.value import PromptValue
from asset_pipeline.storage.atomic import atomic_write

_HASH = re.compile(r"^[0-9a-f]{64}$")


class PromptCache:
    def __init__(self, root: Path | str):
        self.folder = Path(root) / "prompts"

    def _path(self, request_hash: str) -> Path:
        if not _HASH.match(request_hash):
            raise ValueError("a prompt request hash is 64 hex digits")
        return self.folder / f"{request_hash}.json"

    def get(self, request_hash: str) -> tuple[PromptValue, dict[str, Any]] | None:
        path = self._path(request_hash)
        try:
            record = json.loads(path.read_text())
            return PromptValue(prompt=record["prompt"], negative_prompt=record.get("negative_prompt", "")), record
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None

    def put(self, request_hash: str, value: PromptValue, record: dict[str, Any]) -> None:
        document = {**record, "prompt": value.prompt, "negative_prompt": value.negative_prompt}
        atomic_write(self._path(request_hash), json.dumps(document, indent=1, allow_nan=False).encode())
