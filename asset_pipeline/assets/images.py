"""`images`: one partition per catalog entry; a run over many partitions generates them concurrently.

Written as a generator with `output_required=False`: it logs one `AssetMaterialization` per
stored image as soon as it is stored (plus that partition's check results) and yields no output,
so Dagster does not log a second materialization per partition at the end of the step. Failed
partitions are collected and raised at the end, so finished partitions show as materialized and
the rest as failed ("re-execute failed" and "backfill failed and missing" then pick them up).
"""

from collections.abc import Iterator

import dagster as dg

from asset_pipeline.assets.image_checks import image_check_specs
from asset_pipeline.assets.image_production import ImageOutcome, RunScope, not_started, produce_image
from asset_pipeline.assets.image_prompts import prompts_for_images
from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.lineage import check_target, latest_events_by_partition, provenance_tags
from asset_pipeline.assets.partition_runner import per_partition_asset, raise_for_failures, run_concurrently
from asset_pipeline.assets.progress_reports import with_concurrency_limit
from asset_pipeline.assets.review_checks import approved_check_spec, approved_evaluation
from asset_pipeline.assets.run_summary import RunTally, summary_lines
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.progress_hub import ProgressHub

IMAGES_CODE_VERSION = "1"
IMAGE_PROVIDER_POOL = "image_provider"
# Check results wait for this many materializations, so tying them to their materialization
# events costs one query per batch instead of one per image.
CHECK_BATCH_SIZE = 32


def build_images(
    partitions_def: dg.StaticPartitionsDefinition, *, partitions_per_run: int | None = None
) -> dg.AssetsDefinition:
    @per_partition_asset(
        partitions_per_run=partitions_per_run,
        key=IMAGES,
        partitions_def=partitions_def,
        deps=[PROMPTS],  # the final prompt; it carries the catalog's render settings too (image_prompts.py)
        check_specs=[*image_check_specs(partitions_def), approved_check_spec(partitions_def)],
        code_version=IMAGES_CODE_VERSION,
        kinds={"png"},
        pool=IMAGE_PROVIDER_POOL,
        # The outer net for crashes; per-image failures are retried inside the generator and end
        # the step with `allow_retries=False`. A step retry re-uses every stored image and
        # re-attaches to every journaled prediction, so it never pays twice.
        retry_policy=dg.RetryPolicy(
            max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        description="One generated PNG per catalog entry, stored in the image store.",
    )
    def images(
        context: dg.AssetExecutionContext,
        image_generator: ImageGenerator,
        image_store: ImageStore,
        catalog_file: CatalogFile,
        progress_hub: ProgressHub,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation | dg.Output]:
        catalog = catalog_file.load()
        keys = context.partition_keys
        context.log.info(
            f"{len(keys)} partition(s), backend {image_generator.backend}, "
            f"up to {image_generator.max_concurrency} at once"
        )
        catalog, spec_versions, failures = yield from prompts_for_images(context, catalog, keys)
        for key, reason in failures.items():
            context.log.error(f"partition {key} failed: {reason}")
        unchecked: list[ImageOutcome] = []
        if image_generator.is_paid:
            image_generator.record_caps(run_id=context.run.run_id)
        publish = with_concurrency_limit(progress_hub.publish, lambda: image_generator.concurrency_limit)  # issue 16
        scope = RunScope(run_id=context.run.run_id, publish=publish,
                         run_is_alive=lambda run_id: _run_is_alive(context.instance, run_id),
                         on_retry=lambda notice: context.log.warning(notice.line()))
        tally = RunTally()
        to_make = [key for key in keys if key not in failures]
        for key in to_make:
            scope.progress(key).status("pending")

        def work(key: str) -> ImageOutcome:
            return produce_image(key, catalog=catalog, generator=image_generator, store=image_store, scope=scope)

        def skipped(key: str) -> ImageOutcome:
            reason = "not started: the budget was exhausted earlier in this run"
            scope.progress(key).status("skipped", message=reason)
            return not_started(key, reason)

        outcomes = run_concurrently(
            to_make, work, max_concurrency=image_generator.max_concurrency,
            stop=scope.budget_exhausted, skipped=skipped, cancelled=scope.cancelled,
        )
        for outcome in _until_terminated(outcomes):
            tally.add(error=outcome.error, failure_kind=outcome.failure_kind, cache_hit=outcome.cache_hit,
                      fallback=bool(outcome.stored and outcome.stored.record.get("fallback")))
            if outcome.error is not None:
                failures[outcome.partition_key] = outcome.error
                context.log.error(f"partition {outcome.partition_key} failed: {outcome.error}")
                continue
            yield _materialization(outcome, spec_versions[outcome.partition_key])
            unchecked.append(outcome)
            if len(unchecked) >= CHECK_BATCH_SIZE:
                yield from _check_evaluations(context, unchecked, image_generator)
                unchecked = []
        yield from _check_evaluations(context, unchecked, image_generator)

        # Check results were logged per partition above; Dagster still expects each selected check's
        # output once per step, so close them here (they carry no value and log nothing more).
        selected_checks = context.selected_asset_check_keys
        for output_name, check_spec in context.assets_def.check_specs_by_output_name.items():
            if check_spec.key in selected_checks:
                yield dg.Output(None, output_name=output_name)

        spending = image_generator.run_spending(run_id=context.run.run_id) if image_generator.is_paid else None
        context.log.info("\n".join(summary_lines(
            tally, total=len(keys), spent_run_usd=spending.spent_run_usd if spending else None,
            status=spending.status if spending else None,
        )))
        raise_for_failures(failures, total=len(keys))

    return images


def _run_is_alive(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether another run may still finish an image. Unknown runs count as alive; a run whose
    process was killed stays STARTED until run monitoring notices, so its reservation also stops
    counting after the generator's in-flight window."""
    run = instance.get_run_by_id(run_id)
    return run is None or not run.is_finished


def _until_terminated(outcomes: Iterator[ImageOutcome]) -> Iterator[ImageOutcome]:
    """Turn a termination into a failure Dagster does not retry.

    Dagster retries a step whose retry policy is set even when it was interrupted (for preempted
    workers); for a terminated run that would start paid generations again. By the time this
    raises, `run_concurrently` has cancelled the in-flight predictions and closed their
    reservations.
    """
    try:
        yield from outcomes
    except dg.DagsterExecutionInterruptedError:
        raise dg.Failure(
            description="run terminated: in-flight predictions were cancelled and their reservations closed",
            allow_retries=False,
        ) from None


def _materialization(outcome: ImageOutcome, spec_version: tuple[str, int]) -> dg.AssetMaterialization:
    assert outcome.stored is not None and outcome.spec is not None and outcome.request is not None
    spec, stored, record = outcome.spec, outcome.stored, outcome.stored.record
    metadata: dict[str, object] = {
        "path": dg.MetadataValue.path(str(stored.path)),
        "sha256": stored.sha256,
        "width": spec.width,
        "height": spec.height,
        "backend": record.get("backend", outcome.request.backend),
        "model": record.get("model", outcome.request.model),
        "seed": spec.render_seed,
        "take": spec.take,
        "prompt": outcome.request.prompt[:2000],
        "request_hash": stored.request_hash or outcome.request.request_hash,
        "cost_usd": dg.MetadataValue.float(outcome.cost_usd),
        "cache_hit": outcome.cache_hit,
        "attempts": outcome.attempts,
        "strategies": list(outcome.strategies or record.get("strategies") or []),
        "duration_s": dg.MetadataValue.float(round(outcome.duration_s, 4)),
        "fallback": bool(record.get("fallback", False)),
        "category": spec.category,
        "spec_hash": spec.spec_hash,
        "preview": dg.MetadataValue.md(outcome.preview or ""),
    }
    if record.get("fallback_reason"):
        metadata["fallback_reason"] = record["fallback_reason"]
    prediction_id = outcome.prediction_id or record.get("prediction_id")
    if prediction_id:
        metadata["prediction_id"] = prediction_id
    return dg.AssetMaterialization(
        asset_key=IMAGES,
        partition=outcome.partition_key,
        metadata=metadata,
        tags=provenance_tags(
            code_version=IMAGES_CODE_VERSION, data_version=stored.sha256, inputs={PROMPTS: spec_version}
        ),
    )


def _check_evaluations(
    context: dg.AssetExecutionContext, outcomes: list[ImageOutcome], generator: ImageGenerator
) -> Iterator[dg.AssetCheckEvaluation]:
    """The check results of already-logged materializations, tied to them in one query per batch."""
    if not outcomes:
        return
    keys = [outcome.partition_key for outcome in outcomes]
    materialized = latest_events_by_partition(context.instance, IMAGES, keys, observation=False)
    # `approved`: a new image is unreviewed unless this exact image was reviewed before.
    states = generator.review_states({o.partition_key: o.stored.sha256 for o in outcomes if o.stored is not None})
    for outcome in outcomes:
        if outcome.stored is not None:
            state, review = states[outcome.partition_key]
            yield approved_evaluation(outcome.partition_key, state, review, sha256=outcome.stored.sha256,
                                      target=check_target(materialized.get(outcome.partition_key)))
    for outcome in outcomes:
        target = check_target(materialized.get(outcome.partition_key))
        for check in outcome.checks:
            yield dg.AssetCheckEvaluation(
                asset_key=IMAGES,
                check_name=check.name,
                passed=check.passed,
                partition=outcome.partition_key,
                description=check.description,
                metadata=check.metadata,
                target_materialization_data=target,
            )
