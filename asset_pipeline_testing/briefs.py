"""Catalogs written as briefs plus a house style, and the fake LLM's settings (tests and bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LLM_KEY = "sk-llmSECRETkeyNEVERtoBEshown0123456789"
MODEL = "fake-llm"
PRICE = (1.0, 4.0)  # USD per million input / output tokens
PRICES_JSON = '{"fake-llm": [1.0, 4.0]}'

STYLE = {
    "guide": "Warm watercolour palette. Soft morning light. 50mm lens, shallow depth of field.",
    "avoid": "text, logos",
}


def brief_entries(count: int = 4, *, written: int = 1, size: int = 64) -> list[dict[str, Any]]:
    """`count` entries with a brief, then `written` entries with a written prompt."""
    entries: list[dict[str, Any]] = [
        {"id": f"brief-{i:03d}", "category": "scene", "brief": f"grandmother passing a recipe book number {i}",
         "width": size + 32, "height": size}
        for i in range(count)
    ]
    entries += [{"id": f"written-{i:03d}", "category": "icon", "prompt": f"a written icon {i}", "width": size + 32,
                 "height": size} for i in range(written)]
    return entries


def write_brief_catalog(path: Path, entries: list[dict[str, Any]] | None = None, style: dict | None = None) -> Path:
    document = {"style": style or STYLE, "images": entries if entries is not None else brief_entries()}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def llm_environment(base_url: str) -> dict[str, str]:
    """The environment that makes `ASSET_PIPELINE_PROMPTS=llm` use the fake server at `base_url` (…/v1)."""
    return {"ASSET_PIPELINE_PROMPTS": "llm", "ASSET_PIPELINE_LLM_API_KEY": LLM_KEY,
            "ASSET_PIPELINE_LLM_BASE_URL": base_url, "ASSET_PIPELINE_LLM_MODEL": MODEL,
            "ASSET_PIPELINE_LLM_PRICES": PRICES_JSON}
