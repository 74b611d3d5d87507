"""The events that tie prompts to the catalog and images to prompts, shared by both assets.

`prompts` partitions point at the `image_catalog` observation of their spec version (logged here
when nobody observed it yet), and carry their value in metadata, so `images` reads the stored
prompts of a whole range in one or two queries (no second store to keep in sync with the event log).
"""

from __future__ import annotations

import difflib
from collections.abc import Generator
from dataclasses import dataclass

import dagster as dg

from asset_pipeline.assets.keys import IMAGE_CATALOG, PROMPTS
from asset_pipeline.assets.lineage import event_data_version, latest_events_by_partition, observation_tags, provenance_tags
from asset_pipeline.catalog.spec import Catalog
from asset_pipeline.prompting.value import PromptValue, rendered_spec
from asset_pipeline.prompting.writer import WrittenPrompt

PROMPTS_CODE_VERSION = "1"
PROMPT_FAILED = "prompt_failed"  # metadata of the observation that records a failed prompt


@dataclass(frozen=True)
class StoredPrompt:
    """A partition's latest `prompts` materialization: its value, data version and event id."""

    value: PromptValue
    version: str
    storage_id: int


def observe_catalog_versions(
    context: dg.AssetExecutionContext, catalog: Catalog, keys: list[str]
) -> Generator[dg.AssetObservation, None, dict[str, tuple[str, int]]]:
    """Each partition's `image_catalog` version and the storage id of the observation recording it;
    partitions whose current version was never observed get an observation logged now."""
    instance = context.instance
    versions = {key: catalog.partition_version(catalog.by_id[key]) for key in keys if key in catalog.by_id}
    observed = latest_events_by_partition(instance, IMAGE_CATALOG, list(versions), observation=True)
    unobserved = [key for key, version in versions.items() if event_data_version(observed.get(key)) != version]
    for key in unobserved:
        yield dg.AssetObservation(asset_key=IMAGE_CATALOG, partition=key,
                                  tags=observation_tags(versions[key], observed_by=context.run.run_id))
    if unobserved:
        observed.update(latest_events_by_partition(instance, IMAGE_CATALOG, unobserved, observation=True))
    return {key: (version, observed[key].storage_id) for key, version in versions.items()}


def latest_prompts(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, StoredPrompt]:
    """The stored prompt of each of `keys` that has one."""
    found = {}
    for key, record in latest_events_by_partition(instance, PROMPTS, keys, observation=False).items():
        materialization = record.asset_materialization
        metadata = materialization.metadata if materialization else {}
        prompt, negative, version = metadata.get("prompt"), metadata.get("negative_prompt"), event_data_version(record)
        if prompt is None or version is None:
            continue
        value = PromptValue(prompt=str(prompt.value), negative_prompt=str(negative.value) if negative else "")
        found[key] = StoredPrompt(value, version, record.storage_id)
    return found


def prompt_materialization(
    written: WrittenPrompt, catalog: Catalog, catalog_version: tuple[str, int], previous: StoredPrompt | None
) -> dg.AssetMaterialization:
    """One `prompts` partition: the value in metadata, what changed since the previous version, and
    lineage to the catalog; its data version is the rendered spec's hash (see `rendered_spec`)."""
    spec = catalog.by_id[written.partition_key]
    version = rendered_spec(spec, written.value).spec_hash
    metadata: dict[str, object] = {
        "prompt": written.value.prompt,
        "negative_prompt": written.value.negative_prompt,
        "source": written.source,
        "cost_usd": dg.MetadataValue.float(written.cost_usd),
        "cache_hit": written.cache_hit,
        "changed": previous is None or previous.value != written.value,
        "diff": dg.MetadataValue.md(prompt_diff_markdown(previous.value if previous else None, written.value)),
    }
    if written.request_hash:
        metadata.update(request_hash=written.request_hash, model=written.model or "", brief=spec.brief or "",
                        input_tokens=written.input_tokens, output_tokens=written.output_tokens, attempts=written.attempts)
        if catalog.style is not None:
            metadata["style_version"] = catalog.style.version[:16]
    return dg.AssetMaterialization(
        asset_key=PROMPTS, partition=written.partition_key, metadata=metadata,
        tags=provenance_tags(code_version=PROMPTS_CODE_VERSION, data_version=version,
                             inputs={IMAGE_CATALOG: catalog_version}),
    )


def prompt_diff_lines(old: PromptValue | None, new: PromptValue) -> list[str]:
    """A word-level unified diff of the prompt and negative prompt (empty when nothing changed)."""
    lines: list[str] = []
    for field in ("prompt", "negative_prompt"):
        before = getattr(old, field).split(", ") if old else []
        after = getattr(new, field).split(", ")
        if before != after:
            lines += [line.rstrip("\n") for line in difflib.unified_diff(before, after, f"{field} (old)",
                                                                         f"{field} (new)", lineterm="", n=1)]
    return lines


def prompt_diff_markdown(old: PromptValue | None, new: PromptValue) -> str:
    if old is None:
        return "first version"
    lines = prompt_diff_lines(old, new)
    return "unchanged" if not lines else "```diff\n" + "\n".join(lines) + "\n```"


def prompt_failure(partition_key: str, reason: str) -> dg.AssetObservation:
    """Records that `partition_key`'s latest prompt failed. An observation carries no data version,
    so staleness is untouched; `images` reads it (`latest_prompt_failures`) so that it never renders
    an older stored prompt in place of the one that failed, whatever run or re-execution follows."""
    return dg.AssetObservation(asset_key=PROMPTS, partition=partition_key, metadata={PROMPT_FAILED: reason[:2000]})


def latest_prompt_failures(instance: dg.DagsterInstance, keys: list[str],
                           stored: dict[str, StoredPrompt]) -> dict[str, str]:
    """Of `keys`, those whose latest prompt attempt failed after their stored prompt was written, and why."""
    failures = {}
    for key, record in latest_events_by_partition(instance, PROMPTS, keys, observation=True).items():
        observation = record.asset_observation
        reason = observation.metadata.get(PROMPT_FAILED) if observation else None
        if reason is not None and (key not in stored or record.storage_id > stored[key].storage_id):
            failures[key] = str(reason.value)
    return failures
