"""`prompts`: one partition per catalog entry, the final prompt `images` renders, written from briefs.

Partitioned and run like `images` (same partitions, same backfill policy, one materialization per
finished partition as soon as it is written, failures raised at the end), and upstream of it, so
a backfill or `--partition-range` selecting both runs prompts then images in the same runs as
images alone. To let `images` run after it in the same run, the step ends with one output that
carries no materialization (`HAND_ON`, see `dagster_internals.py`); Dagster otherwise skips the
steps below an asset that yielded no output. A prompt that fails is recorded (`prompt_failure`)
and, when the run renders images too, that image fails with the reason (never rendering an older
stored prompt) while the other images go on. The step itself fails when no prompt at all was
written, or when the run has no images step (a prompts-only run must show its failures).
"""


import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from asset_pipeline.assets.keys import IMAGE_CATALOG, IMAGES, PROMPTS
from asset_pipeline.assets.partition_runner import per_partition_asset, raise_for_failures, run_concurrently
from asset_pipeline.assets.prompt_events import (
    PROMPTS_CODE_VERSION,
    latest_prompts,
    observe_catalog_versions,
    prompt_failure,
    prompt_materialization,
)
from asset_pipeline.dagster_internals import SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION
from asset_pipeline.errors import PromptError
from asset_pipeline.progress.messages import ProgressEvent
from asset_pipeline.prompting.writer import WrittenPrompt
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline.resources.prompt_writer import PromptWriterResource

HAND_ON = {SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION: True}
PROMPT_STAGE = "prompt"


@dataclass(frozen=True)
class PromptOutcome:
    partition_key: str
    written: WrittenPrompt | None = None
    error: str | None = None
    failure_class: str = ""


def build_prompts(
    partitions_def: dg.StaticPartitionsDefinition, *, partitions_per_run: int | None = None
) -> dg.AssetsDefinition:
    @per_partition_asset(
        partitions_per_run=partitions_per_run,
        key=PROMPTS,
        partitions_def=partitions_def,
        deps=[IMAGE_CATALOG],
        code_version=PROMPTS_CODE_VERSION,
        kinds={"openai"},
        dagster_type=dg.Nothing,
        description="The final prompt and negative prompt of each catalog entry: written prompts as they are, "
                    "briefs expanded with the style guide (template or LLM, metered and cached).",
    )
    def prompts(
        context: dg.AssetExecutionContext,
        prompt_writer: PromptWriterResource,
        image_generator: ImageGenerator,
        image_store: ImageStore,
        catalog_file: CatalogFile,
        progress_hub: ProgressHub,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetObservation | dg.Output]:
        catalog = catalog_file.load()
        keys = [key for key in context.partition_keys if key in catalog.by_id]
        unknown = {key: f"no entry with id '{key}' in {catalog.source}" for key in context.partition_keys
                   if key not in catalog.by_id}
        catalog_versions = yield from observe_catalog_versions(context, catalog, keys)
        previous = latest_prompts(context.instance, keys)
        paid = prompt_writer.expander == "llm"
        writer = prompt_writer.writer(ledger=image_generator.ledger if paid else None, caps=image_generator.caps,
                                      data_dir=image_store.root)
        run_id = context.run.run_id
        if paid:
            image_generator.record_caps(run_id=run_id)
        context.log.info(f"{len(keys)} prompt(s), expander {prompt_writer.expander}"
                         + (f" ({prompt_writer.model})" if paid else ""))
        cancelled, exhausted = threading.Event(), threading.Event()

        def publish(key: str, status: str, message: str, cost: float | None = None) -> None:
            try:
                progress_hub.publish(ProgressEvent(run_id=run_id, partition_key=key, status=status,  # type: ignore[arg-type]
                                                   stage=PROMPT_STAGE, message=message[:2000], cost_usd=cost))
            except Exception:  # noqa: BLE001 - progress is best-effort
                pass

        def work(key: str) -> PromptOutcome:
            spec = catalog.by_id[key]
            publish(key, "generating", "writing the prompt" if spec.written_prompt is None else "prompt as written")
            try:
                written = writer.write(spec, catalog.style, run_id=run_id, cancelled=cancelled)
            except PromptError as exc:
                if exc.failure_class == "budget_exhausted":
                    exhausted.set()
                publish(key, "failed", exc.reason)
                return PromptOutcome(key, error=exc.reason, failure_class=exc.failure_class)
            except Exception as exc:  # one broken prompt must not abort the others
                reason = f"unexpected {exc.__class__.__name__}"
                publish(key, "failed", reason)
                return PromptOutcome(key, error=reason, failure_class="unexpected")
            publish(key, "pending", f"prompt ready ({written.source}{', cached' if written.cache_hit else ''})",
                    cost=written.cost_usd)
            return PromptOutcome(key, written=written)

        def skipped(key: str) -> PromptOutcome:
            return PromptOutcome(key, error="not started: the budget was exhausted earlier in this run",
                                 failure_class="not_started")

        failures: dict[str, str] = dict(unknown)
        written_count = cache_hits = 0
        cost = 0.0
        try:
            outcomes = run_concurrently(keys, work, max_concurrency=prompt_writer.max_concurrency,
                                        stop=exhausted, skipped=skipped, cancelled=cancelled)
            try:
                for outcome in outcomes:
                    if outcome.written is None:
                        failures[outcome.partition_key] = outcome.error or "failed"
                        context.log.error(f"prompt {outcome.partition_key} failed: {outcome.error}")
                        yield prompt_failure(outcome.partition_key, outcome.error or "failed")
                        continue
                    written_count += 1
                    cache_hits += outcome.written.cache_hit
                    cost += outcome.written.cost_usd
                    yield prompt_materialization(outcome.written, catalog, catalog_versions[outcome.partition_key],
                                                 previous.get(outcome.partition_key))
            except dg.DagsterExecutionInterruptedError:
                raise dg.Failure(description="run terminated: no new prompt calls were started",
                                 allow_retries=False) from None
        finally:
            writer.close()
        context.log.info(f"prompts: {written_count} written ({cache_hits} cache hit(s)), {len(failures)} failed, "
                         f"${cost:.6f} spent on the LLM")
        if failures and (not written_count or not _images_in_this_run(context)):
            raise_for_failures(failures, total=len(context.partition_keys))
        if failures:  # the images of the prompts that were written go on; the others fail in `images`
            context.log.warning(f"{len(failures)} prompt(s) failed; their images will fail in this run's images "
                                f"step, the other {written_count} go on: " + ", ".join(sorted(failures)[:20]))
        yield dg.Output(None, metadata=HAND_ON)

    return prompts


def _images_in_this_run(context: dg.AssetExecutionContext) -> bool:
    """Whether this run's plan has the `images` step (a re-execution names its steps; a run of a
    selection names its assets; otherwise the execution plan says)."""
    run = context.run
    if run.step_keys_to_execute:
        return IMAGES.to_python_identifier() in run.step_keys_to_execute
    if run.asset_selection:
        return IMAGES in run.asset_selection
    snapshot_id = run.execution_plan_snapshot_id
    plan = context.instance.get_execution_plan_snapshot(snapshot_id) if snapshot_id else None
    return plan is None or any(step.key == IMAGES.to_python_identifier() for step in plan.steps)

