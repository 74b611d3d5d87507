"""What the prompt commands read: each entry's stored prompt, the prompt its image was rendered
from, and the prompt that would be written now, when that costs nothing (written, pinned,
template, or an LLM answer already cached). No command here ever calls the LLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.prompt_events import StoredPrompt, latest_prompts, prompt_diff_lines
from asset_pipeline.catalog.spec import Catalog
from asset_pipeline.cli.context import CommandContext
from asset_pipeline.dagster_internals import get_input_event_pointer_tag
from asset_pipeline.prompting.cache import PromptCache
from asset_pipeline.prompting.template import template_prompt
from asset_pipeline.prompting.value import PromptValue, written_value
from asset_pipeline.prompting.writer import PromptWriter
from asset_pipeline.resources.configured import prompt_writer


def offline_writer(context: CommandContext) -> PromptWriter:
    """The run's prompt writer as configured, without its key and without a ledger: it never calls out."""
    resource = prompt_writer(context.settings).model_copy(update={"api_key": None})
    return resource.writer(ledger=None, caps=context.generator.caps, data_dir=str(context.settings.data_dir))


@dataclass(frozen=True)
class PromptState:
    key: str
    source: str  # written, override or brief
    brief: str | None
    stored: PromptValue | None  # the latest `prompts` materialization
    rendered: PromptValue | None  # the prompt the latest image was rendered from
    current: PromptValue | None  # what would be written now, when free; None: needs an LLM call
    request_hash: str | None
    estimate_usd: float

    def as_json(self) -> dict[str, Any]:
        def value(v: PromptValue | None) -> dict[str, str] | None:
            return v.model_dump() if v else None

        return {"key": self.key, "source": self.source, "brief": self.brief, "stored": value(self.stored),
                "rendered": value(self.rendered), "current": value(self.current), "request_hash": self.request_hash,
                "needs_llm_call": self.current is None, "llm_estimate_usd": self.estimate_usd,
                "diff": prompt_diff_lines(self.rendered, self.current or self.stored) if (self.current or self.stored)
                else []}


def prompt_states(context: CommandContext, keys: list[str]) -> list[PromptState]:
    catalog, writer = context.catalog, offline_writer(context)
    with dg.DagsterInstance.get() as instance:
        stored = latest_prompts(instance, keys)
        rendered = _rendered_prompts(instance, keys)
    return [_state(catalog, writer, key, stored.get(key), rendered.get(key)) for key in keys]


def _state(catalog: Catalog, writer: PromptWriter, key: str, stored: StoredPrompt | None,
           rendered: PromptValue | None) -> PromptState:
    spec = catalog.get(key)
    written = written_value(spec)
    source = "override" if spec.prompt_override is not None else "written" if written else "brief"
    request = writer.request_for(spec, catalog.style)
    current, estimate = written, 0.0
    if request is not None:
        cached = PromptCache(writer.cache.folder.parent).get(request.request_hash)
        if cached is not None:
            current = cached[0]
        elif not writer.is_paid:
            current = template_prompt(request)
        else:
            estimate = writer.estimate_usd(request)
    return PromptState(key, source, spec.brief, stored.value if stored else None, rendered, current,
                       request.request_hash if request else None, round(estimate, 6))


def _rendered_prompts(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, PromptValue]:
    """The prompt each latest image was rendered from, through the `prompts` event its lineage names."""
    pointer_tag = get_input_event_pointer_tag(PROMPTS)
    found: dict[str, PromptValue] = {}
    for key in keys:
        images = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=IMAGES, asset_partitions=[key]),
                                                 limit=1).records
        tags = images[0].asset_materialization.tags if images and images[0].asset_materialization else {}
        pointer = (tags or {}).get(pointer_tag)
        if not pointer or not pointer.isdigit():
            continue
        storage_id = int(pointer)
        prompts = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PROMPTS, asset_partitions=[key], before_storage_id=storage_id + 1), limit=1
        ).records
        if prompts and prompts[0].storage_id == storage_id and prompts[0].asset_materialization:
            metadata = prompts[0].asset_materialization.metadata
            found[key] = PromptValue(prompt=str(metadata["prompt"].value),
                                     negative_prompt=str(metadata["negative_prompt"].value))
    return found


def prompt_estimate(context: CommandContext, keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(each key's spec as `images` would render it, the prompts' part of `estimate`).

    A brief's image is priced with the prompt it would get now when that is free, else its stored
    prompt; prompts still to be written by the LLM are priced at what their calls reserve."""
    from asset_pipeline.prompting.value import rendered_spec

    catalog, writer = context.catalog, offline_writer(context)
    briefs = [key for key in keys if catalog.get(key).written_prompt is None]
    stored: dict[str, StoredPrompt] = {}
    if briefs:
        with dg.DagsterInstance.get() as instance:
            stored = latest_prompts(instance, briefs)
    specs: dict[str, Any] = {}
    to_write, cache_hits, cost = 0, 0, 0.0
    for key in keys:
        spec = catalog.get(key)
        request = writer.request_for(spec, catalog.style)
        value = written_value(spec)
        if request is not None:
            cached = writer.cache.get(request.request_hash)
            if cached is not None:
                cache_hits += 1
                value = cached[0]
            else:
                to_write += 1
                cost += writer.estimate_usd(request)
                value = template_prompt(request) if not writer.is_paid else (stored[key].value if key in stored else None)
        specs[key] = rendered_spec(spec, value) if value is not None else spec
    report = {"expander": writer.policy.expander, "model": writer.policy.model if writer.is_paid else None,
              "briefs": len(briefs), "to_write": to_write, "cache_hits": cache_hits,
              "estimated_cost_usd": round(cost, 6)}
    return specs, report
