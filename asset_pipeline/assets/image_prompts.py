"""Which prompt each `images` partition renders, and the `prompts` event it points at.

`images` has `prompts` as its only parent. Entries whose prompt needs no writing (a written prompt,
or a pinned `prompt_override`) never wait for the `prompts` asset: when their stored `prompts`
partition is missing or out of date, the images step logs it itself (free, no LLM), so catalogs
without briefs work as before with `images` alone. Entries with a brief render the stored prompt
(even a stale one: "materializing images alone uses the stored prompts"); one with no stored prompt
fails with a message saying to materialize `prompts` first. In a run that writes prompts too, a
brief whose prompt failed in that run fails its image (the other images of the run go on).
"""

from __future__ import annotations

from collections.abc import Generator

import dagster as dg

from asset_pipeline.assets.keys import PROMPTS
from asset_pipeline.assets.lineage import latest_events_by_partition
from asset_pipeline.assets.prompt_events import (
    latest_prompts,
    observe_catalog_versions,
    prompt_materialization,
)
from asset_pipeline.catalog.spec import Catalog
from asset_pipeline.prompting.value import rendered_spec, written_value
from asset_pipeline.prompting.writer import WrittenPrompt

NO_PROMPT_YET = "no prompt written for its brief yet: materialize `prompts` for this partition first"
NOT_WRITTEN_IN_RUN = ("its prompt was not written in this run (the `prompts` step's log says why), so the "
                      "stored one may be out of date: nothing was rendered")


def prompts_for_images(
    context: dg.AssetExecutionContext, catalog: Catalog, keys: list[str]
) -> Generator[dg.AssetObservation | dg.AssetMaterialization, None,
               tuple[Catalog, dict[str, tuple[str, int]], dict[str, str]]]:
    """(the catalog with final prompts in place of briefs, each key's `prompts` version and event,
    the keys that cannot be rendered and why)."""
    stored = latest_prompts(context.instance, keys)
    # A run that writes prompts too renders a brief's image only from the prompt written in this run:
    # one whose prompt failed here must not fall back to an older stored prompt (issue 15).
    selected = context.run.asset_selection  # None or empty: every asset of the job
    writes_prompts = (not selected or PROMPTS in selected) and any(
        prompt.run_id == context.run.run_id for prompt in stored.values())
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
            if writes_prompts and (key not in stored or stored[key].run_id != context.run.run_id):
                missing[key] = NOT_WRITTEN_IN_RUN
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
