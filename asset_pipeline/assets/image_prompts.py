"""Which prompt each `images` partition renders, and the `prompts` event it points at.

`images` has `prompts` as its only parent. Entries whose prompt needs no writing (a written prompt,
or a pinned `prompt_override`) never wait for the `prompts` asset: when their stored `prompts`
partition is missing or out of date, the images step logs it itself (free, no LLM), so catalogs
without briefs work as before with `images` alone. Entries with a brief render the stored prompt
(even a stale one: "materializing images alone uses the stored prompts"); one with no stored prompt
fails with a message saying to materialize `prompts` first. A brief whose latest prompt attempt
failed (after its stored prompt was written) fails its image with that reason instead of rendering
the older prompt, in the run that wrote prompts and in any re-execution or images-only run after it.
"""

from __future__ import annotations

from collections.abc import Generator

import dagster as dg

from asset_pipeline.assets.keys import PROMPTS
from asset_pipeline.assets.lineage import latest_events_by_partition
from asset_pipeline.assets.prompt_events import (
    latest_prompt_failures,
    latest_prompts,
    observe_catalog_versions,
    prompt_materialization,
)
from asset_pipeline.catalog.spec import Catalog
from asset_pipeline.prompting.value import rendered_spec, written_value
from asset_pipeline.prompting.writer import WrittenPrompt

NO_PROMPT_YET = "no prompt written for its brief yet: materialize `prompts` for this partition first"
PROMPT_FAILED_LAST = ("its latest prompt failed ({reason}); nothing was rendered from an older prompt: "
                      "materialize `prompts` for this partition again")


def prompts_for_images(
    context: dg.AssetExecutionContext, catalog: Catalog, keys: list[str]
) -> Generator[dg.AssetObservation | dg.AssetMaterialization, None,
               tuple[Catalog, dict[str, tuple[str, int]], dict[str, str]]]:
    """(the catalog with final prompts in place of briefs, each key's `prompts` version and event,
    the keys that cannot be rendered and why)."""
    stored = latest_prompts(context.instance, keys)
    briefs = [key for key in keys if key in catalog.by_id and written_value(catalog.by_id[key]) is None]
    failed = latest_prompt_failures(context.instance, briefs, stored) if briefs else {}
    specs = dict(catalog.by_id)
    versions: dict[str, tuple[str, int]] = {}
    missing: dict[str, str] = {}
    to_log: list[WrittenPrompt] = []
    for key in keys:
        spec = catalog.by_id.get(key)
        if spec is None:
            continue  # produce_image reports the unknown id
        value = written_value(spec)
        if value is None:
            if key in failed:
                missing[key] = PROMPT_FAILED_LAST.format(reason=failed[key][:300])
                continue
            if key not in stored:
                missing[key] = NO_PROMPT_YET
                continue
            value = stored[key].value
        final = rendered_spec(spec, value)
        specs[key] = final
        if key in stored and stored[key].version == final.spec_hash:
            versions[key] = (stored[key].version, stored[key].storage_id)
        else:
            to_log.append(WrittenPrompt(key, value, "override" if spec.prompt_override is not None else "written"))
    if to_log:
        logged = [written.partition_key for written in to_log]
        catalog_versions = yield from observe_catalog_versions(context, catalog, logged)
        for written in to_log:
            yield prompt_materialization(written, catalog, catalog_versions[written.partition_key],
                                         stored.get(written.partition_key))
        for key, record in latest_events_by_partition(context.instance, PROMPTS, logged, observation=False).items():
            versions[key] = (specs[key].spec_hash, record.storage_id)
    effective = Catalog(source=catalog.source, images=tuple(specs[spec.id] for spec in catalog.images), style=catalog.style)
    return effective, versions, missing
